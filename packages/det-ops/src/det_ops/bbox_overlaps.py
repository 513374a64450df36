"""Pairwise overlaps (IoU or IoF) between two sets of boxes."""

from __future__ import annotations

from typing import Any

import numpy as np

from det_ops import _checks
from det_ops._arrays import NUMPY, dtype_name, is_torch, kernels
from det_ops._fx import traced_call

MODES = {"iou": 0, "iof": 1}
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def bbox_overlaps(
    boxes1: Any, boxes2: Any, mode: str = "iou", aligned: bool = False, *, offset: int = 0
) -> Any:
    """IoU (or IoF, intersection over the area of boxes1) of two sets of boxes.

    Args:
        boxes1: Tensor[N, 4] (x1, y1, x2, y2), pixels (no +1 in widths); floating or
            integer (computed in float64 and returned as float32).
        boxes2: Tensor[M, 4].
        mode: "iou" or "iof".
        aligned: compare box i of boxes1 with box i of boxes2 only (N == M).
        offset: 0 (widths x2 - x1) or 1 (widths x2 - x1 + 1, the 2019 mmdetection
            bbox_overlaps).

    Returns:
        Tensor[N, M], or Tensor[N] when aligned. A zero-area denominator is
        taken as 1e-6, so degenerate boxes give 0, not NaN.
    """
    traced = traced_call(bbox_overlaps, (boxes1, boxes2, mode, aligned), {"offset": offset})
    if traced is not None:
        return traced
    op = "bbox_overlaps"
    boxes1 = _checks.array(op, "boxes1", boxes1)
    boxes2 = _checks.array(op, "boxes2", boxes2, like=boxes1)
    _checks.same_device(op, boxes1=boxes1, boxes2=boxes2)
    _checks.on_cpu_or_cuda(op, boxes1)
    _checks.shape(op, "boxes1", _checks.real_valued(op, "boxes1", boxes1), (None, 4), "[N, 4]")
    _checks.shape(op, "boxes2", _checks.real_valued(op, "boxes2", boxes2), (None, 4), "[M, 4]")
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be 'iou' or 'iof', got {mode!r}")
    if not isinstance(aligned, bool):
        raise TypeError(f"{op}: aligned must be a bool, got {type(aligned).__name__}")
    if aligned:
        _checks.same_length(op, ("boxes1", "boxes2"), boxes1, boxes2)
    integers = all(dtype_name(b) in _checks.INT_DTYPES for b in (boxes1, boxes2))
    # Integer coordinates are exact in float64, not always in float32.
    dtype = "float64" if integers else _checks.compute_dtype(boxes1, boxes2)
    boxes1, boxes2 = _checks.cast(boxes1, dtype), _checks.cast(boxes2, dtype)
    offset = _checks.box_offset(op, offset)
    boxes1, boxes2 = _checks.with_offset(boxes1, offset), _checks.with_offset(boxes2, offset)
    if is_torch(boxes1):
        import torch

        import det_ops._torch  # noqa: F401

        out = torch.ops.det_ops.bbox_overlaps(boxes1, boxes2, mode, aligned)
        return out.float() if integers else out
    out = bbox_overlaps_kernel(NUMPY, boxes1, boxes2, mode, aligned)
    return out.astype("float32") if integers else out


def box_iou(boxes1: Any, boxes2: Any, fmt: str = "xyxy") -> Any:
    """IoU of every box of boxes1 with every box of boxes2, as ``torchvision.ops.box_iou``.

    Args:
        boxes1: Tensor[..., N, 4], floating or integer, pixels (no +1 in widths).
        boxes2: Tensor[..., M, 4], the same leading dimensions.
        fmt: "xyxy" (x1, y1, x2, y2), "xywh" (x1, y1, width, height) or "cxcywh"
            (centre x, centre y, width, height).

    Returns:
        Tensor[..., N, M]; float32 for integer boxes and float16 ones (as torchvision),
        else the boxes' dtype. A pair of zero-area boxes gives 0 (torchvision: NaN).
    """
    traced = traced_call(box_iou, (boxes1, boxes2), {"fmt": fmt})
    if traced is not None:
        return traced
    op = "box_iou"
    if fmt not in BOX_FORMATS:
        raise ValueError(f"{op}: fmt must be one of {BOX_FORMATS}, got {fmt!r}")
    boxes1 = _checks.array(op, "boxes1", boxes1)
    boxes2 = _checks.array(op, "boxes2", boxes2, like=boxes1)
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        _checks.real_valued(op, name, boxes)
        if boxes.ndim < 2 or boxes.shape[-1] != 4:
            raise ValueError(f"{op}: {name} must have shape [..., N, 4], got {list(boxes.shape)}")
    if tuple(boxes1.shape[:-2]) != tuple(boxes2.shape[:-2]):
        raise ValueError(
            f"{op}: boxes1 and boxes2 must have the same leading dimensions, got "
            f"{list(boxes1.shape)} and {list(boxes2.shape)}"
        )
    out_dtype = _iou_dtype(boxes1, boxes2)
    boxes1, boxes2 = _to_xyxy(boxes1, fmt), _to_xyxy(boxes2, fmt)
    if boxes1.ndim == 2:
        return _as_dtype(bbox_overlaps(boxes1, boxes2), out_dtype)
    lead = tuple(boxes1.shape[:-2])
    flat1 = boxes1.reshape(-1, *boxes1.shape[-2:])
    flat2 = boxes2.reshape(-1, *boxes2.shape[-2:])
    parts = [bbox_overlaps(a, b) for a, b in zip(flat1, flat2, strict=True)]
    n, m = boxes1.shape[-2], boxes2.shape[-2]
    if is_torch(boxes1):
        import torch

        if not parts:
            return boxes1.new_empty((*lead, n, m), dtype=out_dtype)
        return _as_dtype(torch.stack(parts).reshape(*lead, n, m), out_dtype)
    if not parts:
        return np.empty((*lead, n, m), dtype=out_dtype)
    return _as_dtype(np.stack(parts).reshape(*lead, n, m), out_dtype)


def _as_dtype(x: Any, dtype: Any) -> Any:
    return x.to(dtype) if is_torch(x) else x.astype(dtype, copy=False)


def _iou_dtype(boxes1: Any, boxes2: Any) -> Any:
    """The dtype of the IoU of these boxes: float64 if either is, else float32."""
    name = "float64" if "float64" in (dtype_name(boxes1), dtype_name(boxes2)) else "float32"
    if is_torch(boxes1):
        import torch

        return getattr(torch, name)
    return np.dtype(name)


def _to_xyxy(boxes: Any, fmt: str) -> Any:
    """Boxes of format fmt as (x1, y1, x2, y2); integer boxes converted in float64."""
    if fmt == "xyxy":
        return boxes
    if dtype_name(boxes) in _checks.INT_DTYPES:
        boxes = _checks.cast(boxes, "float64")
    xy, wh = boxes[..., :2], boxes[..., 2:]
    if fmt == "cxcywh":
        xy = xy - wh / 2
    corners = (xy, xy + wh)
    if is_torch(boxes):
        import torch

        return torch.cat(corners, dim=-1)
    return np.concatenate(corners, axis=-1)


def bbox_overlaps_kernel(xp: Any, boxes1: Any, boxes2: Any, mode: str, aligned: bool) -> Any:
    n, m = boxes1.shape[0], boxes2.shape[0]
    out = xp.empty((n,) if aligned else (n, m), dtype_name(boxes1), like=boxes1)
    kernels("bbox_overlaps", boxes1).bbox_overlaps(
        xp.code(boxes1), xp.ptr(boxes1), n, xp.ptr(boxes2), m, MODES[mode], aligned, xp.ptr(out)
    )
    return out
