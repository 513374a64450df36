"""The det_ops kernels as the heads call them at inference: straight to the torch ops.

det_ops' public functions check their arguments in Python on concrete sizes and values,
which torch.export cannot trace (the number of boxes left after a score threshold is only
known when the graph runs). The heads build these inputs themselves, so the checks have
nothing to catch here; these calls keep the public functions' box-width convention
(``offset``) and RoIAlign modes, and export as one ``det_ops::<op>`` node each.
"""

from __future__ import annotations

import torch
from torch import Tensor

import det_ops.torch_ops  # noqa: F401  (registers torch.ops.det_ops)
from det_ops.roi_align import aligned_mode


def _computed(x: Tensor) -> Tensor:
    """x in a dtype the kernels compute in: float32 or float64 (half and bfloat16, as under
    autocast, computed in float32 as det_ops' public functions do)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _with_offset(boxes: Tensor, offset: int) -> Tensor:
    """Boxes ending at (x2 + offset, y2 + offset): their plain IoU is the IoU with widths
    x2 - x1 + offset (det_ops' nms offset)."""
    if offset == 0:
        return boxes
    return torch.cat([boxes[:, :2], boxes[:, 2:] + offset], dim=1)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> Tensor:
    """det_ops.nms on float32 Tensor[N, 4] boxes and Tensor[N] scores: kept indices."""
    boxes, scores = _computed(boxes), _computed(scores).to(_computed(boxes).dtype)
    return torch.ops.det_ops.nms(_with_offset(boxes, offset), scores, iou_threshold)


def batched_nms(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, offset: int = 0
) -> Tensor:
    """det_ops.batched_nms: NMS within each idxs value; kept indices by decreasing score."""
    boxes, scores = _computed(boxes), _computed(scores).to(_computed(boxes).dtype)
    return torch.ops.det_ops.batched_nms(_with_offset(boxes, offset), scores, idxs, iou_threshold)


def sigmoid_focal_loss(logits: Tensor, labels: Tensor, alpha: float, gamma: float) -> Tensor:
    """det_ops.sigmoid_focal_loss of Tensor[N, C] logits and int64 Tensor[N] labels in 0..C
    (C: background), unreduced, in logits' dtype: without the public function's label range
    check, which reads the labels on the host."""
    computed = _computed(logits)
    with_grad = logits.requires_grad and torch.is_grad_enabled()
    loss = torch.ops.det_ops.sigmoid_focal_loss_labels(
        computed, labels.to(torch.int64), alpha, gamma, with_grad
    )[0]
    return loss.to(logits.dtype)


def roi_align(
    feat: Tensor,
    rois: Tensor,
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool | str,
) -> Tensor:
    """det_ops.roi_align of Tensor[K, 5] rois (image index, x1, y1, x2, y2) on feat, in
    feat's dtype."""
    computed = _computed(feat)
    pooled = torch.ops.det_ops.roi_align(
        computed,
        rois.to(computed.dtype),
        spatial_scale,
        output_size,
        output_size,
        sampling_ratio,
        aligned_mode("roi_align", aligned),
    )
    return pooled.to(feat.dtype)


def multi_level_roi_align(
    feats: list[Tensor],
    rois: Tensor,
    levels: Tensor,
    output_size: int,
    spatial_scales: list[float],
    sampling_ratio: int,
    aligned: bool | str,
) -> Tensor:
    """det_ops.multi_level_roi_align: each of the Tensor[K, 5] rois pooled from
    feats[levels[k]] in one call (one launch on CUDA, no host synchronisation), in the
    maps' dtype."""
    computed = [_computed(f) for f in feats]
    pooled = torch.ops.det_ops.multi_level_roi_align(
        computed,
        rois.to(computed[0].dtype).contiguous(),
        levels.to(torch.int64).contiguous(),
        list(spatial_scales),
        output_size,
        output_size,
        sampling_ratio,
        aligned_mode("multi_level_roi_align", aligned),
    )
    return pooled.to(feats[0].dtype)


def batched_nms_padded(
    boxes: Tensor,
    scores: Tensor,
    groups: Tensor,
    iou_threshold: float,
    *,
    num_groups: int,
    max_per_group: int,
    offset: int = 0,
) -> tuple[Tensor, Tensor]:
    """det_ops.batched_nms_padded: NMS per group into (keep int64[G, M] padded with -1,
    counts int64[G]); scores -inf mark boxes that take no part. No host synchronisation."""
    boxes = _computed(boxes)
    scores = _computed(scores).to(boxes.dtype)
    return torch.ops.det_ops.batched_nms_padded(
        _with_offset(boxes, offset).contiguous(),
        scores.contiguous(),
        groups.to(torch.int64).contiguous(),
        float(iou_threshold),
        num_groups,
        max_per_group,
    )
