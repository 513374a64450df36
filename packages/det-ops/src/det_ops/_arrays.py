"""One calling convention for numpy arrays and torch tensors.

The compiled kernels take buffer addresses; each op's kernel wrapper is
written once against this small interface and runs on numpy arrays (no torch
import) or on torch tensors (from the torch custom ops).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

# dtype codes understood by det_ops._C
DTYPE_CODES = {"float32": 0, "float64": 1}


def dtype_name(x: Any) -> str:
    """'float32', 'int64', ... for a numpy array or a torch tensor."""
    return str(x.dtype).removeprefix("torch.")


def is_torch(x: Any) -> bool:
    """Whether x is a torch tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class NumpyArrays:
    """Allocation and buffer addresses for numpy arrays."""

    @staticmethod
    def empty(shape: tuple[int, ...], dtype: str, like: Any) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    @staticmethod
    def zeros(shape: tuple[int, ...], dtype: str, like: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    @staticmethod
    def ptr(x: np.ndarray | None) -> int:
        return 0 if x is None else x.ctypes.data

    @staticmethod
    def code(x: Any) -> int:
        return DTYPE_CODES[dtype_name(x)]


class TorchArrays:
    """Allocation and buffer addresses for torch tensors (on like's device)."""

    @staticmethod
    def empty(shape: tuple[int, ...], dtype: str, like: Any) -> Any:
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype), device=like.device)

    @staticmethod
    def zeros(shape: tuple[int, ...], dtype: str, like: Any) -> Any:
        import torch

        return torch.zeros(shape, dtype=getattr(torch, dtype), device=like.device)

    @staticmethod
    def ptr(x: Any) -> int:
        return 0 if x is None else x.data_ptr()

    @staticmethod
    def code(x: Any) -> int:
        return DTYPE_CODES[dtype_name(x)]


NUMPY = NumpyArrays()
TORCH = TorchArrays()


def kernels(op: str, x: Any) -> Any:
    """The compiled kernels for x's device (numpy arrays run on the CPU)."""
    from det_ops import _C

    if is_torch(x) and x.device.type != "cpu":
        raise NotImplementedError(
            f"{op}: no kernel for tensors on {x.device} in this build of det-ops; "
            "move the inputs to the CPU"
        )
    return _C.cpu
