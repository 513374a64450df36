"""Which operators of a piece of code make the host wait for the device.

A training step that never waits on the host queues all of its kernels ahead; an operator
whose output size or value the host must read (``nonzero``, a boolean-mask index, ``item``,
an NMS whose kept count decides the output's size) stops the queue until the device has
caught up. They are the same operators on every device, so the audit runs on the CPU too:

    with SyncAudit() as audit:
        losses = model(images, metas, targets)
    assert audit.counts() == {}

What it records, at the torch dispatcher:
- ``aten::nonzero`` (and ``argwhere``, ``where`` of one argument, which call it),
  ``aten::_local_scalar_dense`` (``item()``, ``int(t)``, ``float(t)``, ``bool(t)``),
  ``masked_select``, ``unique`` and its variants, ``bincount``, ``repeat_interleave``
  without ``output_size``, ``equal``, ``allclose``;
- ``aten::index`` / ``index_put_`` with a boolean index (the mask is turned into indices);
- device-to-host copies (``.cpu()``, ``.tolist()`` of a device tensor, ``.to("cpu")``);
- custom operators (``det_ops::nms``, ...) whose fake implementation gives an output of a
  size known only when it runs (``torch.library.get_ctx().new_dynamic_size()``).

What it cannot see: ``.tolist()`` or ``int()`` of a CPU tensor never reaches the dispatcher
(on a GPU the same line is a device-to-host copy, which it records), and host-to-device
copies of CPU tensors made per call are not syncs (they are recorded separately, under
``host_to_device``, for the audits that want none).
"""

from __future__ import annotations

import os
import traceback
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Operators that read a device value or a data-dependent size on the host.
_SYNC_OPS = frozenset(
    {
        "aten::nonzero",
        "aten::_local_scalar_dense",
        "aten::masked_select",
        "aten::_unique",
        "aten::_unique2",
        "aten::unique_dim",
        "aten::unique_consecutive",
        "aten::unique_dim_consecutive",
        "aten::bincount",
        "aten::equal",
    }
)
_BOOL_INDEX_OPS = frozenset(
    {"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"}
)
_COPY_OPS = frozenset({"aten::_to_copy", "aten::copy_"})


def _name(func) -> str:
    return func._schema.name  # "aten::nonzero", "det_ops::nms"


def _has_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
        for i in (indices or ())
    )


def _copy_direction(name: str, args, kwargs, out) -> str | None:
    """'device_to_host', 'host_to_device' or None for a copy between devices."""
    if name == "aten::copy_":
        dst, src = args[0], args[1]
    else:
        src, dst = args[0], out
    if not isinstance(src, torch.Tensor) or not isinstance(dst, torch.Tensor):
        return None
    if src.device == dst.device:
        return None
    if dst.device.type == "cpu":
        return "device_to_host"
    if src.device.type == "cpu":
        return "host_to_device"
    return None


class SyncAudit(TorchDispatchMode):
    """Records the operators run inside ``with`` that imply a host synchronisation.

    Attributes:
        events: one entry per recorded call, in order: the operator's name, or for a
            boolean-mask index "aten::index(bool)" / "aten::index_put(bool)", for a copy
            to the host "device_to_host".
        host_to_device: copies of CPU tensors to a device (not syncs; counted apart).
        where: with ``where=True``, the innermost source line outside torch of each event,
            "file:line function" (to find the code that waits).
    """

    def __init__(self, *, where: bool = False) -> None:
        super().__init__()
        self.events: list[str] = []
        self.host_to_device = 0
        self.record_where = where
        self.where: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _name(func)
        if name in _SYNC_OPS:
            self.events.append(name)
        elif name in _BOOL_INDEX_OPS and _has_bool_index(args):
            self.events.append(f"{name.rstrip('_')}(bool)")
        elif (
            name == "aten::repeat_interleave"
            and func._overloadname == "Tensor"
            and kwargs.get("output_size") is None
        ):
            self.events.append(name)
        elif name in _COPY_OPS:
            direction = _copy_direction(name, args, kwargs, out)
            if direction == "device_to_host":
                self.events.append(direction)
            elif direction == "host_to_device":
                self.host_to_device += 1
        elif not name.startswith("aten::") and _dynamic_output(func, args, kwargs):
            self.events.append(name)
        if self.record_where and len(self.where) < len(self.events):
            self.where.append(_caller())
        return out

    def counts(self) -> dict[str, int]:
        """{event: calls} of the recorded events (empty: the code never waited)."""
        return dict(Counter(self.events))

    def __len__(self) -> int:
        return len(self.events)


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if f"{os.sep}torch{os.sep}" not in frame.filename:
            return f"{frame.filename}:{frame.lineno} {frame.name}"
    return "?"


_DYNAMIC: dict[str, bool] = {}


def _dynamic_output(func, args, kwargs) -> bool:
    """Whether a custom operator's fake implementation returns a data-dependent size (run
    once per operator on fake copies of its arguments)."""
    key = str(func)
    if key not in _DYNAMIC:
        _DYNAMIC[key] = _fake_sizes_are_dynamic(func, args, kwargs)
    return _DYNAMIC[key]


def _fake_sizes_are_dynamic(func, args, kwargs) -> bool:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv, free_unbacked_symbols

    mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=False)
    flat, spec = tree_flatten((args, kwargs))
    fake = [mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in flat]
    fake_args, fake_kwargs = spec.unflatten(fake)
    try:
        with mode:
            out = func(*fake_args, **fake_kwargs)
    except Exception:  # no fake implementation: nothing known about its sizes
        return False
    outputs, _ = tree_flatten(out)
    return any(isinstance(t, torch.Tensor) and free_unbacked_symbols(t) for t in outputs)


__all__ = ["SyncAudit"]
