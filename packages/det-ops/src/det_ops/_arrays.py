"""One calling convention for numpy arrays and torch tensors.

The compiled kernels take buffer addresses; each op's kernel wrapper is
written once against this small interface and runs on numpy arrays (no torch
import) or on torch tensors (from the torch custom ops).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np

# dtype codes understood by det_ops._C; float16 and bfloat16 by the CUDA kernels that read
# 16-bit maps natively (RoIAlign's), computing in float32.
DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
HALF_DTYPES = ("float16", "bfloat16")


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


# Test-only: a module whose CUDA kernels run the ops of CPU torch tensors, set by
# emulated_cuda(); None outside det-ops' tests of its CUDA kernels.
_emulated: Any = None


@contextmanager
def emulated_cuda(module: Any) -> Iterator[None]:
    """Within this block, ops on CPU torch tensors run ``module.cuda``, the CUDA launchers
    and kernels of det_ops._C_emulated (built with DET_OPS_CUDA=EMULATE: the CUDA sources
    compiled for the CPU), exactly as ops on CUDA tensors run on a GPU. For tests; not
    thread-safe."""
    global _emulated
    previous, _emulated = _emulated, module
    try:
        yield
    finally:
        _emulated = previous


def kernels(op: str, x: Any) -> Any:
    """The compiled kernels for x's device (numpy arrays run on the CPU).

    CUDA kernels come bound to x's device and torch's current stream on it, so
    they take the same arguments as their CPU twins.
    """
    from det_ops import _C

    if is_torch(x) and x.device.type == "cpu" and _emulated is not None:
        return CudaKernels(_emulated.cuda, device=0, stream=0)
    if not is_torch(x) or x.device.type == "cpu":
        return _C.cpu
    if x.device.type == "cuda" and _C.cuda_compiled:
        import torch

        device = x.device.index if x.device.index is not None else torch.cuda.current_device()
        return CudaKernels(_C.cuda, device, torch.cuda.current_stream(device).cuda_stream)
    raise NotImplementedError(
        f"{op}: this build of det-ops has no kernels for tensors on {x.device} "
        "(CUDA kernels are compiled only when nvcc is found at install time); "
        "reinstall det-ops with nvcc on PATH or move the inputs to the CPU"
    )


class CudaKernels:
    """A module's CUDA kernels with the device index and stream filled in."""

    def __init__(self, module: Any, device: int, stream: int) -> None:
        self._module = module
        self._device = device
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return partial(getattr(self._module, name), self._device, self._stream)


def is_cuda(x: Any) -> bool:
    """Whether x's ops run the CUDA kernels: a CUDA tensor, or a CPU tensor within
    emulated_cuda()."""
    if not is_torch(x):
        return False
    return x.device.type == "cuda" or (x.device.type == "cpu" and _emulated is not None)


def input_gradient_buffer(xp: Any, input_shape: Any, grad_output: Any, channels_last: bool) -> Any:
    """The zeroed buffer a RoI op's backward sums the input gradient into: NCHW, or NHWC for
    a channels-last input; float32 for a float16 / bfloat16 gradient (summed, then rounded
    once by `input_gradient`)."""
    dtype = "float32" if dtype_name(grad_output) in HALF_DTYPES else dtype_name(grad_output)
    if channels_last:
        batch, channels, height, width = (int(v) for v in input_shape)
        return xp.zeros((batch, height, width, channels), dtype, like=grad_output)
    return xp.zeros(tuple(input_shape), dtype, like=grad_output)


def input_gradient(buffer: Any, grad_output: Any, channels_last: bool) -> Any:
    """The input gradient from its buffer: in NCHW order (a channels-last view when summed
    so) and grad_output's dtype."""
    if channels_last:
        buffer = buffer.permute(0, 3, 1, 2)
    return buffer if buffer.dtype == grad_output.dtype else buffer.to(grad_output.dtype)
