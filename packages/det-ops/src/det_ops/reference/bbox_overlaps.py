"""Reference IoU / IoF in plain torch."""

from __future__ import annotations

import torch
from torch import Tensor


def bbox_overlaps(
    boxes1: Tensor, boxes2: Tensor, mode: str = "iou", aligned: bool = False
) -> Tensor:
    """IoU or IoF (over boxes1's area) of [N, 4] and [M, 4] boxes; denominators at least 1e-6."""
    if not aligned:
        boxes1, boxes2 = boxes1[:, None, :], boxes2[None, :, :]
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    w = (
        torch.minimum(boxes1[..., 2], boxes2[..., 2])
        - torch.maximum(boxes1[..., 0], boxes2[..., 0])
    ).clamp(min=0)
    h = (
        torch.minimum(boxes1[..., 3], boxes2[..., 3])
        - torch.maximum(boxes1[..., 1], boxes2[..., 1])
    ).clamp(min=0)
    inter = w * h
    denominator = area1 if mode == "iof" else area1 + area2 - inter
    return inter / denominator.clamp(min=1e-6)
