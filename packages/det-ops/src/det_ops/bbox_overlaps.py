"""Pairwise overlaps (IoU or IoF) between two sets of boxes."""

from __future__ import annotations

from typing import Any

from det_ops import _checks
from det_ops._arrays import NUMPY, dtype_name, is_torch, kernels

MODES = {"iou": 0, "iof": 1}


def bbox_overlaps(
    boxes1: Any, boxes2: Any, mode: str = "iou", aligned: bool = False, *, offset: int = 0
) -> Any:
    """IoU (or IoF, intersection over the area of boxes1) of two sets of boxes.

    Args:
        boxes1: Tensor[N, 4] (x1, y1, x2, y2), pixels (no +1 in widths).
        boxes2: Tensor[M, 4].
        mode: "iou" or "iof".
        aligned: compare box i of boxes1 with box i of boxes2 only (N == M).
        offset: 0 (widths x2 - x1) or 1 (widths x2 - x1 + 1, the 2019 mmdetection
            bbox_overlaps).

    Returns:
        Tensor[N, M], or Tensor[N] when aligned. A zero-area denominator is
        taken as 1e-6, so degenerate boxes give 0, not NaN.
    """
    op = "bbox_overlaps"
    boxes1 = _checks.array(op, "boxes1", boxes1)
    boxes2 = _checks.array(op, "boxes2", boxes2, like=boxes1)
    _checks.same_device(op, boxes1=boxes1, boxes2=boxes2)
    _checks.on_cpu_or_cuda(op, boxes1)
    _checks.shape(op, "boxes1", _checks.floating(op, "boxes1", boxes1), (None, 4), "[N, 4]")
    _checks.shape(op, "boxes2", _checks.floating(op, "boxes2", boxes2), (None, 4), "[M, 4]")
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be 'iou' or 'iof', got {mode!r}")
    if not isinstance(aligned, bool):
        raise TypeError(f"{op}: aligned must be a bool, got {type(aligned).__name__}")
    if aligned:
        _checks.same_length(op, ("boxes1", "boxes2"), boxes1, boxes2)
    dtype = _checks.compute_dtype(boxes1, boxes2)
    boxes1, boxes2 = _checks.cast(boxes1, dtype), _checks.cast(boxes2, dtype)
    offset = _checks.box_offset(op, offset)
    boxes1, boxes2 = _checks.with_offset(boxes1, offset), _checks.with_offset(boxes2, offset)
    if is_torch(boxes1):
        import torch

        import det_ops._torch  # noqa: F401

        return torch.ops.det_ops.bbox_overlaps(boxes1, boxes2, mode, aligned)
    return bbox_overlaps_kernel(NUMPY, boxes1, boxes2, mode, aligned)


def bbox_overlaps_kernel(xp: Any, boxes1: Any, boxes2: Any, mode: str, aligned: bool) -> Any:
    n, m = boxes1.shape[0], boxes2.shape[0]
    out = xp.empty((n,) if aligned else (n, m), dtype_name(boxes1), like=boxes1)
    kernels("bbox_overlaps", boxes1).bbox_overlaps(
        xp.code(boxes1), xp.ptr(boxes1), n, xp.ptr(boxes2), m, MODES[mode], aligned, xp.ptr(out)
    )
    return out
