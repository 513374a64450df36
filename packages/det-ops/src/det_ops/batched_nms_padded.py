"""NMS per group into fixed-size outputs with on-device counts: no host synchronisation."""

from __future__ import annotations

import math
from typing import Any

from det_ops import _checks
from det_ops._arrays import NUMPY, TORCH, is_cuda, is_torch, kernels
from det_ops._fx import traced_call
from det_ops.nms import _boxes_and_scores


def batched_nms_padded(
    boxes: Any,
    scores: Any,
    groups: Any,
    iou_threshold: float,
    *,
    num_groups: int,
    max_per_group: int,
    offset: int = 0,
) -> tuple[Any, Any]:
    """Greedy NMS inside each group, into outputs whose shapes depend on the arguments only.

    Boxes of different groups never suppress each other. Within a group the result is that
    of ``nms`` on the group's valid boxes, truncated to ``max_per_group``. Typical uses: the
    RPN proposals of a batch in one call (a group per image and level) and per-class
    detection NMS (a group per image and class). On CUDA nothing is read back to the host
    (no sync): the boxes are sorted by group and score on the device and one kernel walks
    each group, so the call can sit in a CUDA graph or a step that never waits.

    Invalid boxes are masked by their score: a box whose score is ``-inf`` or NaN is never
    kept and never suppresses another (so NaN scores are no error here).

    Args:
        boxes: Tensor[N, 4] or ndarray (x1, y1, x2, y2), pixels.
        scores: Tensor[N] or ndarray.
        groups: integer Tensor[N], the group of each box, in ``[0, num_groups)``. Checked
            on the CPU; on CUDA (and under torch.compile) a box outside that range is
            ignored instead (checking would wait for the device).
        iou_threshold: boxes overlapping a kept box of their group by IoU > this are
            dropped; a number (a 0-d tensor is read on the host).
        num_groups: the number of groups G (>= 1).
        max_per_group: the most boxes kept per group M (>= 1).
        offset: 0 (widths x2 - x1) or 1 (widths x2 - x1 + 1, the 2019 mmdetection NMS).

    Returns:
        (keep int64[G, M], counts int64[G]): keep[g] holds the indices (into the N boxes)
        of group g's kept boxes by decreasing score (equal scores: lower index first),
        padded with -1; counts[g] is how many there are (<= M). Tensors or ndarrays like
        the inputs, on their device.
    """
    traced = traced_call(
        batched_nms_padded,
        (boxes, scores, groups, iou_threshold),
        {"num_groups": num_groups, "max_per_group": max_per_group, "offset": offset},
    )
    if traced is not None:
        return traced
    op = "batched_nms_padded"
    boxes, scores = _boxes_and_scores(op, boxes, scores)
    groups = _checks.array(op, "groups", groups, like=boxes)
    _checks.same_device(op, boxes=boxes, groups=groups)
    _checks.shape(op, "groups", _checks.integer(op, "groups", groups), (None,), "[N]")
    _checks.same_length(op, ("boxes", "groups"), boxes, groups)
    groups = _checks.cast(groups, "int64")
    iou_threshold = _checks.real(op, "iou_threshold", iou_threshold)
    num_groups = _checks.count(op, "num_groups", num_groups)
    max_per_group = _checks.count(op, "max_per_group", max_per_group)
    _checks.group_indices(op, "groups", groups, num_groups)
    boxes = _checks.with_offset(boxes, _checks.box_offset(op, offset))
    if is_torch(boxes):
        import torch

        import det_ops._torch  # noqa: F401  (registers torch.ops.det_ops)

        return torch.ops.det_ops.batched_nms_padded(
            boxes, scores, groups, iou_threshold, num_groups, max_per_group
        )
    return batched_nms_padded_kernel(
        NUMPY, boxes, scores, groups, iou_threshold, num_groups, max_per_group
    )


def batched_nms_padded_kernel(
    xp: Any,
    boxes: Any,
    scores: Any,
    groups: Any,
    iou_threshold: float,
    num_groups: int,
    max_per_group: int,
) -> tuple[Any, Any]:
    """(keep [G, M], counts [G]) from contiguous boxes, scores (one float dtype) and int64
    groups."""
    if is_cuda(boxes):
        return _batched_nms_padded_cuda(
            boxes, scores, groups, iou_threshold, num_groups, max_per_group
        )
    keep = xp.empty((num_groups, max_per_group), "int64", like=boxes)
    counts = xp.empty((num_groups,), "int64", like=boxes)
    kernels("batched_nms_padded", boxes).batched_nms_padded(
        xp.code(boxes),
        xp.ptr(boxes),
        xp.ptr(scores),
        xp.ptr(groups),
        boxes.shape[0],
        iou_threshold,
        num_groups,
        max_per_group,
        xp.ptr(keep),
        xp.ptr(counts),
    )
    return keep, counts


def _batched_nms_padded_cuda(
    boxes: Any,
    scores: Any,
    groups: Any,
    iou_threshold: float,
    num_groups: int,
    max_per_group: int,
) -> tuple[Any, Any]:
    """The CUDA path, every size known on the host: two stable sorts put each group's valid
    boxes together by decreasing score (invalid ones last, as group G), searchsorted finds
    where each group begins, and the kernel walks the groups."""
    import torch

    valid = (scores == scores) & (scores != -math.inf) & (groups >= 0) & (groups < num_groups)
    key = torch.where(valid, groups, num_groups)
    by_score = torch.sort(scores, descending=True, stable=True).indices
    order = by_score[torch.sort(key[by_score], stable=True).indices]
    bounds = torch.arange(num_groups + 1, dtype=torch.int64, device=boxes.device)
    group_begin = torch.searchsorted(key[order], bounds)
    keep = torch.empty((num_groups, max_per_group), dtype=torch.int64, device=boxes.device)
    counts = torch.empty(num_groups, dtype=torch.int64, device=boxes.device)
    kernels("batched_nms_padded", boxes).batched_nms_padded_sorted(
        TORCH.code(boxes),
        boxes.data_ptr(),
        order.data_ptr(),
        group_begin.data_ptr(),
        num_groups,
        max_per_group,
        iou_threshold,
        keep.data_ptr(),
        counts.data_ptr(),
    )
    return keep, counts
