"""Where the CUDA tests run the CUDA kernels: on a GPU, or on the CPU in the emulated build.

The emulated build, det_ops._C_emulated, is the csrc/cuda sources compiled by the host
compiler against csrc/emulated/cuda_emulation.h (install det-ops with DET_OPS_CUDA=EMULATE;
`nox -s tests` does). Its kernels read and write host memory, so its "device" tensors are
CPU tensors that det_ops._arrays.emulated_cuda() routes to its CUDA launchers.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from det_ops import _C
from det_ops._arrays import emulated_cuda

CUDA_SOURCES = Path(__file__).resolve().parents[1] / "csrc" / "cuda"


def emulated_module() -> Any:
    """det_ops._C_emulated; skips the test where it was not built, except in an environment
    built for it (DET_OPS_CUDA=EMULATE, as `nox -s tests` sets), where it must be there."""
    try:
        return importlib.import_module("det_ops._C_emulated")
    except ImportError:
        if os.environ.get("DET_OPS_CUDA", "").upper() == "EMULATE":
            raise
        pytest.skip("det_ops._C_emulated not built (install det-ops with DET_OPS_CUDA=EMULATE)")


def kernels_in_sources() -> set[str]:
    """The names of the __global__ functions in csrc/cuda/*.cu."""
    names = set()
    for path in CUDA_SOURCES.glob("*.cu"):
        names.update(re.findall(r"__global__\s+void\s+(\w+)\s*\(", path.read_text()))
    return names


def _to(value: Any, device: str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


class Device:
    """Runs functions of CPU tensors with the CUDA kernels of one build.

    Args:
        name: "cuda" (a GPU and det_ops._C) or "emulated" (det_ops._C_emulated on the CPU).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = _C if name == "cuda" else emulated_module()

    def __repr__(self) -> str:
        return self.name

    def run(self, fn: Callable[..., Any], *inputs: Any) -> Any:
        """fn(*inputs) with the CUDA kernels. Inputs and results are CPU tensors (alone or in
        tuples, lists and dicts); fn must create no tensor of its own."""
        if self.name == "cuda":
            return _to(fn(*_to(inputs, "cuda")), "cpu")
        with emulated_cuda(self.module):
            return fn(*inputs)

    @contextmanager
    def max_grid_blocks(self, blocks: int) -> Iterator[None]:
        """Caps the grids of the grid-stride kernels, so that their loops wrap."""
        previous = self.module.set_max_grid_blocks(blocks)
        try:
            yield
        finally:
            self.module.set_max_grid_blocks(previous)

    @contextmanager
    def max_index32_elements(self, elements: int) -> Iterator[None]:
        """Caps the tensor sizes that the kernels index in 32 bits (0: 64-bit indices)."""
        previous = self.module.set_max_index32_elements(elements)
        try:
            yield
        finally:
            self.module.set_max_index32_elements(previous)
