"""Argument checks at the public boundary of every op.

Each check raises TypeError (wrong kind or dtype) or ValueError (wrong shape,
value or device) naming the op, the argument, what was expected and what came.
Accepted arrays come back contiguous, in a dtype the kernels compute in.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from det_ops._arrays import dtype_name, is_cuda, is_torch

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def array(op: str, name: str, x: Any, *, like: Any = None) -> Any:
    """x as a numpy array or torch tensor, matching the kind of `like` if given."""
    if is_torch(x):
        if like is not None and not is_torch(like):
            raise TypeError(f"{op}: {name} is a torch tensor but the other inputs are numpy arrays")
        return x
    if like is not None and is_torch(like):
        raise TypeError(
            f"{op}: {name} must be a torch tensor like the other inputs, got {type(x).__name__}"
        )
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple, numbers.Number)):
        return np.asarray(x)
    raise TypeError(f"{op}: {name} must be a numpy array or a torch tensor, got {type(x).__name__}")


def floating(op: str, name: str, x: Any) -> Any:
    if dtype_name(x) not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must have a floating dtype, got {dtype_name(x)}")
    return x


def real_valued(op: str, name: str, x: Any) -> Any:
    """x checked to have a floating or an integer dtype."""
    if dtype_name(x) not in FLOAT_DTYPES + INT_DTYPES:
        raise TypeError(
            f"{op}: {name} must have a floating or an integer dtype, got {dtype_name(x)}"
        )
    return x


def integer(op: str, name: str, x: Any) -> Any:
    if dtype_name(x) not in INT_DTYPES:
        raise TypeError(f"{op}: {name} must have an integer dtype, got {dtype_name(x)}")
    return x


def shape(op: str, name: str, x: Any, expected: Sequence[int | None], text: str) -> Any:
    """Checks x.shape against expected (None: any size); text is e.g. '[N, 4]'."""
    got = tuple(x.shape)
    mismatch = len(got) != len(expected) or any(
        e is not None and e != g for e, g in zip(expected, got, strict=True)
    )
    if mismatch:
        raise ValueError(f"{op}: {name} must have shape {text}, got {list(got)}")
    return x


def same_length(op: str, names: Sequence[str], *arrays: Any) -> None:
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) > 1:
        listed = ", ".join(f"{n} has {k}" for n, k in zip(names, lengths, strict=True))
        raise ValueError(f"{op}: {' and '.join(names)} must have the same length, but {listed}")


def same_device(op: str, **tensors: Any) -> None:
    devices = {name: t.device for name, t in tensors.items() if t is not None and is_torch(t)}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"{op}: all tensors must be on the same device, got {listed}")


def real(
    op: str, name: str, value: Any, *, low: float | None = None, high: float | None = None
) -> float:
    """value as a float: a real number, or a 0-d tensor or array holding one."""
    if (is_torch(value) or isinstance(value, np.ndarray)) and value.ndim == 0:
        if dtype_name(value) == "bool":
            raise TypeError(f"{op}: {name} must be a real number, got a bool tensor")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if (
        math.isnan(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        bounds = (
            f"in [{low}, {high}]"
            if low is not None and high is not None
            else (
                f">= {low}" if low is not None else f"<= {high}" if high is not None else "a number"
            )
        )
        raise ValueError(f"{op}: {name} must be {bounds}, got {value}")
    return value


def positive_int(op: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive integer, got {value!r}")
    return int(value)


def pair(op: str, name: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum."""
    items = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(items) != 2 or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum for v in items
    ):
        raise ValueError(
            f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}"
        )
    return int(items[0]), int(items[1])


def compute_dtype(*arrays: Any) -> str:
    """The kernels' dtype for these inputs: float64 if any is, else float32."""
    return (
        "float64" if any(dtype_name(a) == "float64" for a in arrays if a is not None) else "float32"
    )


def cast(x: Any, dtype: str) -> Any:
    """x in the given dtype, contiguous (no copy when it already is)."""
    if x is None:
        return None
    if is_torch(x):
        import torch

        return x.to(getattr(torch, dtype)).contiguous()
    return np.ascontiguousarray(x, dtype=dtype)


def on_cpu_or_cuda(op: str, x: Any) -> None:
    if is_torch(x) and x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{op}: tensors must be on the CPU or a CUDA device, got {x.device}")


def rois(op: str, value: Any, like: Any, name: str = "rois") -> Any:
    """RoIs as an array [K, 5] (batch_index, x1, y1, x2, y2); name names them in messages.

    Also accepts a list with one [L_i, 4] box array per image, as torchvision does.
    """
    if (
        isinstance(value, (list, tuple))
        and value
        and (is_torch(value[0]) or isinstance(value[0], np.ndarray))
    ):
        parts = []
        for i, boxes in enumerate(value):
            boxes = array(op, f"{name}[{i}]", boxes, like=like)
            shape(op, f"{name}[{i}]", floating(op, f"{name}[{i}]", boxes), (None, 4), "[L, 4]")
            if is_torch(boxes):
                import torch

                index = torch.full((boxes.shape[0], 1), i, dtype=boxes.dtype, device=boxes.device)
                parts.append(torch.cat([index, boxes], dim=1))
            else:
                parts.append(
                    np.concatenate([np.full((boxes.shape[0], 1), i, boxes.dtype), boxes], 1)
                )
        value = torch.cat(parts) if is_torch(parts[0]) else np.concatenate(parts)
    value = array(op, name, value, like=like)
    return shape(op, name, floating(op, name, value), (None, 5), "[K, 5]")


def inspectable(x: Any) -> bool:
    """Whether x's values may be read for a check: not on a GPU (that would wait for the
    device; nor in the tests' emulation of one) and not while torch.compile traces (that
    would break the graph)."""
    if not is_torch(x):
        return True
    import torch

    return not is_cuda(x) and x.device.type == "cpu" and not torch.compiler.is_compiling()


def batch_indices(op: str, rois: Any, batch: int, name: str = "rois") -> None:
    """Checks rois[:, 0] against the batch size, where the values may be read.

    Elsewhere the kernels pool RoIs with an out-of-range batch index to zeros.
    """
    if rois.shape[0] == 0 or not inspectable(rois):
        return
    first = rois[:, 0]
    low, high = float(first.min()), float(first.max())
    if not (low >= 0 and high < batch):
        raise ValueError(
            f"{op}: {name}[:, 0] must be batch indices in [0, {batch}), "
            f"got values in [{low}, {high}]"
        )


def group_indices(
    op: str, name: str, groups: Any, num_groups: int, what: str = "num_groups"
) -> None:
    """Checks integer group (or level) indices against [0, num_groups), where the values may
    be read (see `inspectable`); elsewhere the kernels skip the items of other groups.
    `what` names the bound in the message."""
    if groups.shape[0] == 0 or not inspectable(groups):
        return
    low, high = int(groups.min()), int(groups.max())
    if low < 0 or high >= num_groups:
        raise ValueError(
            f"{op}: {name} must be in [0, {num_groups}) ({what}), got values in [{low}, {high}]"
        )


def count(op: str, name: str, value: Any) -> int:
    """An int >= 1 (TypeError for another kind, ValueError below 1)."""
    value = integer_value(op, name, value)
    if value < 1:
        raise ValueError(f"{op}: {name} must be >= 1, got {value}")
    return value


def feature_map(op: str, name: str, x: Any) -> Any:
    return shape(op, name, floating(op, name, x), (None, None, None, None), "[B, C, H, W]")


def integer_value(op: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    return int(value)


def boolean(op: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


# Box width conventions: x2 - x1 (0), or x2 - x1 + 1 as in the 2019 mmdetection kernels (1).
BOX_OFFSETS = (0, 1)


def box_offset(op: str, offset: Any) -> int:
    """offset checked to be one of BOX_OFFSETS."""
    if isinstance(offset, bool) or offset not in BOX_OFFSETS:
        raise ValueError(
            f"{op}: offset must be 0 (widths x2 - x1) or 1 (widths x2 - x1 + 1, the 2019 "
            f"mmdetection convention), got {offset!r}"
        )
    return int(offset)


def with_offset(boxes: Any, offset: int) -> Any:
    """Boxes whose (x2, y2) moved by offset: their plain IoU is the IoU with widths + offset.

    The intersection min(x2a, x2b) - max(x1a, x1b) + 1 and the width x2 - x1 + 1 of the 2019
    kernels are those of boxes ending at x2 + 1, so one shift gives every op the convention.
    """
    if offset == 0:
        return boxes
    shifted = boxes.copy() if isinstance(boxes, np.ndarray) else boxes.clone()
    shifted[:, 2:] += offset
    return shifted
