"""Reference NMS, batched NMS and Soft-NMS in plain torch (the textbook loops)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def pairwise_iou(box: Tensor, boxes: Tensor) -> Tensor:
    """IoU of one box [4] with boxes [N, 4], as NMS computes it (no epsilon)."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w = (torch.minimum(box[2], boxes[:, 2]) - torch.maximum(box[0], boxes[:, 0])).clamp(min=0)
    h = (torch.minimum(box[3], boxes[:, 3]) - torch.maximum(box[1], boxes[:, 1])).clamp(min=0)
    inter = w * h
    return inter / (area + areas - inter)


def _score_order(scores: Tensor) -> Tensor:
    """Indices by decreasing score, equal scores by increasing index."""
    return torch.sort(scores, descending=True, stable=True).indices


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: visit boxes by score, keep one, drop those overlapping it above the threshold."""
    order = _score_order(scores)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for position, i in enumerate(order.tolist()):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[position + 1 :]
        suppressed[rest] |= pairwise_iou(boxes[i], boxes[rest]) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS per category; the union of the kept boxes, by decreasing score."""
    keep = []
    for category in torch.unique(idxs).tolist():
        members = torch.nonzero(idxs == category).flatten()
        keep.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.int64)
    return keep[_score_order(scores[keep])]


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    method: str = "linear",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS: select the best box, decay the others by overlap, drop those below min_score."""
    current = scores.clone()
    live = torch.nonzero(current >= min_score).flatten()
    keep, kept_scores = [], []
    while len(live):
        best = int(torch.argmax(current[live]))  # first of equal maxima
        i = int(live[best])
        keep.append(i)
        kept_scores.append(current[i].item())
        live = torch.cat([live[:best], live[best + 1 :]])
        iou = pairwise_iou(boxes[i], boxes[live])
        if method == "linear":
            decay = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou * iou) / sigma)
        current[live] *= decay
        live = live[current[live] >= min_score]
    return torch.tensor(keep, dtype=torch.int64), torch.tensor(kept_scores, dtype=scores.dtype)


def batched_nms_padded(
    boxes: Tensor,
    scores: Tensor,
    groups: Tensor,
    iou_threshold: float,
    num_groups: int,
    max_per_group: int,
) -> tuple[Tensor, Tensor]:
    """NMS of each group's valid boxes (score neither -inf nor NaN): the first max_per_group
    kept indices of group g in row g of keep [G, M], padded with -1, and counts [G]."""
    keep = torch.full((num_groups, max_per_group), -1, dtype=torch.int64)
    counts = torch.zeros(num_groups, dtype=torch.int64)
    valid = ~torch.isnan(scores) & (scores != -math.inf)
    for g in range(num_groups):
        members = torch.nonzero(valid & (groups == g)).flatten()
        kept = members[nms(boxes[members], scores[members], iou_threshold)][:max_per_group]
        keep[g, : len(kept)] = kept
        counts[g] = len(kept)
    return keep, counts
