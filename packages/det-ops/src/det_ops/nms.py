"""Non-maximum suppression: greedy, per-class (batched) and soft."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from det_ops import _checks
from det_ops._arrays import NUMPY, TORCH, dtype_name, is_cuda, is_torch, kernels
from det_ops._fx import traced_call

SOFT_NMS_METHODS = {"linear": 0, "gaussian": 1}


def _boxes_and_scores(op: str, boxes: Any, scores: Any) -> tuple[Any, Any]:
    boxes = _checks.array(op, "boxes", boxes)
    scores = _checks.array(op, "scores", scores, like=boxes)
    _checks.same_device(op, boxes=boxes, scores=scores)
    _checks.on_cpu_or_cuda(op, boxes)
    _checks.shape(op, "boxes", _checks.floating(op, "boxes", boxes), (None, 4), "[N, 4]")
    _checks.shape(op, "scores", _checks.floating(op, "scores", scores), (None,), "[N]")
    _checks.same_length(op, ("boxes", "scores"), boxes, scores)
    dtype = _checks.compute_dtype(boxes, scores)
    return _checks.cast(boxes, dtype), _checks.cast(scores, dtype)


def _nan_scores(op: str) -> ValueError:
    return ValueError(f"{op}: scores contains NaN; there is no score order to suppress in")


def nms(boxes: Any, scores: Any, iou_threshold: float, *, offset: int = 0) -> Any:
    """Greedy non-maximum suppression.

    Args:
        boxes: Tensor[N, 4] or ndarray (x1, y1, x2, y2), pixels.
        scores: Tensor[N] or ndarray.
        iou_threshold: boxes overlapping a kept box by IoU > this are dropped; a number
            or a 0-d tensor.
        offset: 0 (widths x2 - x1) or 1 (widths x2 - x1 + 1, the 2019 mmdetection NMS).

    Returns:
        int64 indices of the kept boxes by decreasing score (equal scores: lower
        index first), a tensor or an ndarray like the inputs. A box with a NaN
        coordinate neither suppresses nor is suppressed; a NaN score is an error.
    """
    traced = traced_call(nms, (boxes, scores, iou_threshold), {"offset": offset})
    if traced is not None:
        return traced
    boxes, scores = _boxes_and_scores("nms", boxes, scores)
    iou_threshold = _checks.real("nms", "iou_threshold", iou_threshold)
    boxes = _checks.with_offset(boxes, _checks.box_offset("nms", offset))
    if is_torch(boxes):
        import torch

        import det_ops._torch  # noqa: F401  (registers torch.ops.det_ops)

        return torch.ops.det_ops.nms(boxes, scores, iou_threshold)
    return nms_kernel(NUMPY, boxes, scores, iou_threshold)


def batched_nms(
    boxes: Any, scores: Any, idxs: Any, iou_threshold: float, *, offset: int = 0
) -> Any:
    """NMS within each category: boxes of different idxs never suppress each other.

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2), pixels.
        scores: Tensor[N].
        idxs: integer Tensor[N], the category (or image) of each box.
        iou_threshold: IoU above which a box is dropped; a number or a 0-d tensor.
        offset: 0 (widths x2 - x1) or 1 (widths x2 - x1 + 1, the 2019 mmdetection NMS).

    Returns:
        int64 indices of the kept boxes, by decreasing score. Empty boxes give an
        empty result even when scores, idxs or iou_threshold is None, as in torchvision.
    """
    traced = traced_call(batched_nms, (boxes, scores, idxs, iou_threshold), {"offset": offset})
    if traced is not None:
        return traced
    if any(v is None for v in (scores, idxs, iou_threshold)):
        empty = _empty_indices(boxes)
        if empty is not None:
            return empty
    boxes, scores = _boxes_and_scores("batched_nms", boxes, scores)
    idxs = _checks.array("batched_nms", "idxs", idxs, like=boxes)
    _checks.same_device("batched_nms", boxes=boxes, idxs=idxs)
    _checks.shape(
        "batched_nms", "idxs", _checks.integer("batched_nms", "idxs", idxs), (None,), "[N]"
    )
    _checks.same_length("batched_nms", ("boxes", "idxs"), boxes, idxs)
    idxs = _checks.cast(idxs, "int64")
    iou_threshold = _checks.real("batched_nms", "iou_threshold", iou_threshold)
    boxes = _checks.with_offset(boxes, _checks.box_offset("batched_nms", offset))
    if is_torch(boxes):
        import torch

        import det_ops._torch  # noqa: F401

        return torch.ops.det_ops.batched_nms(boxes, scores, idxs, iou_threshold)
    return batched_nms_kernel(NUMPY, boxes, scores, idxs, iou_threshold)


def _empty_indices(boxes: Any) -> Any:
    """An empty int64 index array like boxes when boxes holds no values, else None."""
    if is_torch(boxes) and boxes.numel() == 0:
        import torch

        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if isinstance(boxes, np.ndarray) and boxes.size == 0:
        return np.empty(0, dtype=np.int64)
    return None


def soft_nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    method: str = "linear",
    *,
    offset: int = 0,
) -> tuple[Any, Any]:
    """Soft-NMS (Bodla et al., 2017): overlapping boxes lose score instead of being dropped.

    Repeatedly selects the highest-scoring remaining box (equal scores: lower
    index first) and multiplies every other remaining score by a decay of its
    IoU with it: linear ``1 - iou`` when iou > iou_threshold, or gaussian
    ``exp(-iou**2 / sigma)``. Boxes whose score falls below min_score are dropped.
    Runs on the CPU (CUDA tensors are copied there and back).

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2), pixels.
        scores: Tensor[N].
        iou_threshold: overlap above which the linear decay applies.
        sigma: width of the gaussian decay (> 0).
        min_score: boxes below this score are discarded.
        method: "linear" or "gaussian".
        offset: 0 (widths x2 - x1) or 1 (widths x2 - x1 + 1, the 2019 mmdetection NMS).

    Returns:
        (keep int64[K] in selection order, their decayed scores [K]).
    """
    traced = traced_call(
        soft_nms, (boxes, scores, iou_threshold, sigma, min_score, method), {"offset": offset}
    )
    if traced is not None:
        return traced
    op = "soft_nms"
    boxes, scores = _boxes_and_scores(op, boxes, scores)
    iou_threshold = _checks.real(op, "iou_threshold", iou_threshold)
    sigma = _checks.real(op, "sigma", sigma)
    if sigma <= 0:
        raise ValueError(f"{op}: sigma must be > 0, got {sigma}")
    min_score = _checks.real(op, "min_score", min_score)
    if method not in SOFT_NMS_METHODS:
        raise ValueError(f"{op}: method must be one of {sorted(SOFT_NMS_METHODS)}, got {method!r}")
    boxes = _checks.with_offset(boxes, _checks.box_offset(op, offset))
    if is_torch(boxes):
        import torch

        import det_ops._torch  # noqa: F401

        keep, new_scores = torch.ops.det_ops.soft_nms(
            boxes.cpu(), scores.cpu(), iou_threshold, sigma, min_score, method
        )
        return keep.to(boxes.device), new_scores.to(boxes.device)
    return soft_nms_kernel(NUMPY, boxes, scores, iou_threshold, sigma, min_score, method)


def nms_kernel(xp: Any, boxes: Any, scores: Any, iou_threshold: float) -> Any:
    if is_cuda(boxes):
        return _nms_cuda(boxes, scores, iou_threshold)
    n = boxes.shape[0]
    keep = xp.empty((n,), "int64", like=boxes)
    count = kernels("nms", boxes).nms(
        xp.code(boxes), xp.ptr(boxes), xp.ptr(scores), n, iou_threshold, xp.ptr(keep)
    )
    if count < 0:
        raise _nan_scores("nms")
    return keep[:count]


def _nms_cuda(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """NMS on the GPU: sort, overlap bitmask, on-device reduction; one sync for the count."""
    import torch

    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    sorted_boxes = boxes.index_select(0, order).contiguous()
    words = (n + 63) // 64
    mask = torch.empty((n, words), dtype=torch.int64, device=boxes.device)
    removed = torch.empty(words, dtype=torch.int64, device=boxes.device)
    keep = torch.empty(n, dtype=torch.int64, device=boxes.device)
    count = torch.empty(1, dtype=torch.int64, device=boxes.device)
    kernels("nms", boxes).nms_sorted(
        TORCH.code(boxes),
        sorted_boxes.data_ptr(),
        n,
        iou_threshold,
        mask.data_ptr(),
        removed.data_ptr(),
        keep.data_ptr(),
        count.data_ptr(),
    )
    # The kept count has to come to the host; the NaN check rides on the same copy.
    kept, nan = torch.stack([count[0], torch.isnan(scores).any().to(torch.int64)]).tolist()
    if nan:
        raise _nan_scores("nms")
    return order[keep[:kept]]


def batched_nms_kernel(xp: Any, boxes: Any, scores: Any, idxs: Any, iou_threshold: float) -> Any:
    if is_cuda(boxes):
        # One NMS over boxes moved apart per category: boxes of different
        # categories then never overlap. The span covers the finite coordinates
        # only: one NaN or inf would make it non-finite, and with it every
        # shifted box, so that nothing would be suppressed.
        if boxes.shape[0] == 0:
            return nms_kernel(xp, boxes, scores, iou_threshold)
        finite = boxes.isfinite()
        high = boxes.where(finite, -math.inf).max()
        low = boxes.where(finite, math.inf).min()
        span = (high - low + 1).clamp(min=1)  # 1 when no coordinate is finite
        shifted = boxes + (idxs.to(boxes.dtype) * span)[:, None]
        return nms_kernel(xp, shifted.contiguous(), scores, iou_threshold)
    n = boxes.shape[0]
    keep = xp.empty((n,), "int64", like=boxes)
    count = kernels("batched_nms", boxes).batched_nms(
        xp.code(boxes), xp.ptr(boxes), xp.ptr(scores), xp.ptr(idxs), n, iou_threshold, xp.ptr(keep)
    )
    if count < 0:
        raise _nan_scores("batched_nms")
    return keep[:count]


def soft_nms_kernel(
    xp: Any,
    boxes: Any,
    scores: Any,
    iou_threshold: float,
    sigma: float,
    min_score: float,
    method: str,
) -> tuple[Any, Any]:
    n = boxes.shape[0]
    keep = xp.empty((n,), "int64", like=boxes)
    new_scores = xp.empty((n,), dtype_name(scores), like=scores)
    count = kernels("soft_nms", boxes).soft_nms(
        xp.code(boxes),
        xp.ptr(boxes),
        xp.ptr(scores),
        n,
        iou_threshold,
        sigma,
        min_score,
        SOFT_NMS_METHODS[method],
        xp.ptr(keep),
        xp.ptr(new_scores),
    )
    if count < 0:
        raise _nan_scores("soft_nms")
    return keep[:count], new_scores[:count]
