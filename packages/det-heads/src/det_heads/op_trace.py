"""The operator calls of a piece of code as a CUDA graph would fix them.

A captured CUDA graph replays the kernels of one run: the same operators, on tensors of the
same shapes and dtypes, with the same non-tensor arguments (a Python number passed to an
operator, a clamp's bound or a fill value, is baked into the kernel). Code may be captured
once and replayed for another batch only if it calls the same operators that way for both.
The record is taken at the torch dispatcher, so the proof runs on the CPU:

    with OpTrace() as first:
        model(*batch_a)
    with OpTrace() as second:
        model(*batch_b)
    assert first.calls == second.calls

What a record holds, per call: the operator ("aten::add.Tensor"), each tensor argument and
result as (dtype, shape) and every other argument as its value. Tensor values are not
recorded (a graph reads them from memory on each replay); a device value read on the host
(``item()``) shows as the ``aten::_local_scalar_dense`` call, and a value cached across calls
(a constant made once per key) shows as the calls that made it in one run and not the other.
"""

from __future__ import annotations

import os
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _describe(value):
    if isinstance(value, torch.Tensor):
        return ("tensor", str(value.dtype).removeprefix("torch."), tuple(value.shape))
    if isinstance(value, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN == NaN for the comparison
        return "nan"
    return value


class OpTrace(TorchDispatchMode):
    """Records every operator call inside ``with`` as a graph capture would fix it.

    Attributes:
        calls: one tuple per call, in order: (operator name with overload, arguments,
            results), each argument and result described as above.
        where: with ``where=True``, the innermost source line outside torch of each call
            ("file:line function"), to find the code behind a difference.
    """

    def __init__(self, *, where: bool = False) -> None:
        super().__init__()
        self.calls: list[tuple] = []
        self.record_where = where
        self.where: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs, _ = tree_flatten((args, kwargs))
        outputs, _ = tree_flatten(out)
        self.calls.append(
            (
                str(func),
                tuple(_describe(x) for x in inputs),
                tuple(_describe(x) for x in outputs),
            )
        )
        if self.record_where:
            self.where.append(_caller())
        return out

    def __len__(self) -> int:
        return len(self.calls)


def first_difference(a: OpTrace, b: OpTrace) -> str | None:
    """None if two traces made the same calls, else a description of the first call that
    differs (with the source lines when both were recorded with ``where=True``)."""
    for i, (x, y) in enumerate(zip(a.calls, b.calls, strict=False)):
        if x != y:
            lines = [f"call {i} differs:", f"  {x}", f"  {y}"]
            if a.where and b.where:
                lines += [f"  at {a.where[i]}", f"  at {b.where[i]}"]
            return "\n".join(lines)
    if len(a.calls) != len(b.calls):
        n = min(len(a.calls), len(b.calls))
        extra = a if len(a.calls) > n else b
        at = f" at {extra.where[n]}" if extra.where else ""
        return f"{len(a.calls)} calls against {len(b.calls)}; the first extra: {extra.calls[n]}{at}"
    return None


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if f"{os.sep}torch{os.sep}" not in frame.filename:
            return f"{frame.filename}:{frame.lineno} {frame.name}"
    return "?"


__all__ = ["OpTrace", "first_difference"]
