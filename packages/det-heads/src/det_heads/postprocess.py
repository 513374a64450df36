"""Per-class non-maximum suppression of detections."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

import det_ops
from det_heads import kernels
from det_heads.tracing import guard_or_false


@dataclass(frozen=True)
class NMSConfig:
    """Post-processing settings; defaults from the 2019 R-CNN / RetinaNet test configs.

    Attributes:
        score_thr: detections scoring below this are dropped first.
        iou_thr: IoU above which a lower-scoring box of the same class is suppressed.
        max_per_img: detections kept per image, by score.
        soft: soft-NMS (linear decay) instead of greedy NMS.
        soft_min_score: soft-NMS drops boxes whose decayed score falls below this.
        min_size: candidates narrower or lower than this (x2 - x1) are dropped before NMS
            (torchvision's box heads: 0.01; the 2019 configs: none).
    """

    score_thr: float = 0.05
    iou_thr: float = 0.5
    max_per_img: int = 100
    soft: bool = False
    soft_min_score: float = 0.05
    min_size: float = 0.0


# 2019 R-CNN and RetinaNet test config.
DEFAULT_NMS = NMSConfig()


def multiclass_nms(
    boxes: Tensor, scores: Tensor, config: NMSConfig = DEFAULT_NMS, *, offset: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Detections of one image after per-class thresholding and NMS.

    Args:
        boxes: Tensor[N, 4] class-agnostic or Tensor[N, 4 * C] class-specific boxes
            (x1, y1, x2, y2), pixels.
        scores: Tensor[N, C] class scores (background excluded).
        config: thresholds.
        offset: box width convention of the IoU (det_ops.nms).

    Returns:
        (boxes Tensor[K, 4], scores Tensor[K], labels int64 Tensor[K] in 0..C-1), K <=
        max_per_img, by decreasing score.
    """
    n, num_classes = scores.shape
    if boxes.shape[1] == 4:
        boxes = boxes[:, None, :].expand(n, num_classes, 4)
    else:
        boxes = boxes.reshape(n, num_classes, 4)
    mask = scores > config.score_thr
    return candidate_nms(boxes[mask], scores[mask], mask.nonzero()[:, 1], config, offset=offset)


def candidate_nms(
    cand_boxes: Tensor,
    cand_scores: Tensor,
    cand_labels: Tensor,
    config: NMSConfig = DEFAULT_NMS,
    *,
    offset: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class NMS of candidates already above config.score_thr (see multiclass_nms).

    Args:
        cand_boxes: Tensor[K, 4] (x1, y1, x2, y2), pixels.
        cand_scores: Tensor[K].
        cand_labels: int64 Tensor[K] in 0..C-1.
        config: thresholds (score_thr is not applied again).
        offset: box width convention of the IoU (det_ops.nms).

    Returns:
        As multiclass_nms.
    """
    if config.min_size > 0:
        w = cand_boxes[:, 2] - cand_boxes[:, 0]
        h = cand_boxes[:, 3] - cand_boxes[:, 1]
        big = (w >= config.min_size) & (h >= config.min_size)
        cand_boxes, cand_scores, cand_labels = cand_boxes[big], cand_scores[big], cand_labels[big]
    # guard_or_false: an exported graph cannot branch on a count it only knows when it
    # runs; NMS of no candidates gives no detections anyway.
    if guard_or_false(cand_scores.numel() == 0):
        return cand_boxes.new_zeros(0, 4), cand_scores.new_zeros(0), cand_labels
    if config.soft:
        kept_boxes, kept_scores, kept_labels = [], [], []
        for c in cand_labels.unique():
            sel = (cand_labels == c).nonzero().flatten()
            keep, new_scores = det_ops.soft_nms(
                cand_boxes[sel].contiguous(),
                cand_scores[sel].contiguous(),
                iou_threshold=config.iou_thr,
                min_score=config.soft_min_score,
                method="linear",
                offset=offset,
            )
            kept_boxes.append(cand_boxes[sel][keep])
            kept_scores.append(new_scores)
            kept_labels.append(cand_labels[sel][keep])
        out_boxes, out_scores = torch.cat(kept_boxes), torch.cat(kept_scores)
        out_labels = torch.cat(kept_labels)
        order = out_scores.argsort(descending=True, stable=True)[: config.max_per_img]
        return out_boxes[order], out_scores[order], out_labels[order]
    keep = kernels.batched_nms(
        cand_boxes.contiguous(), cand_scores.contiguous(), cand_labels, config.iou_thr, offset
    )
    keep = keep[: config.max_per_img]
    return cand_boxes[keep], cand_scores[keep], cand_labels[keep]


def padded_multiclass_nms(
    boxes: Tensor,
    scores: Tensor,
    config: NMSConfig = DEFAULT_NMS,
    *,
    offset: int = 0,
) -> dict[str, Tensor]:
    """multiclass_nms of a whole batch into fixed-size outputs, without host synchronisation.

    Greedy NMS per image and class (one det_ops.batched_nms_padded call, a group per image
    and class), then the best max_per_img of each image over its classes. The same
    detections as multiclass_nms image by image, padded.

    Args:
        boxes: Tensor[B, N, C, 4] each candidate's box for each class (x1, y1, x2, y2), pixels.
        scores: Tensor[B, N, C] class scores; -inf marks what is not a candidate (padding).
            The score threshold and min_size of config are applied here.
        config: thresholds (not soft: soft-NMS keeps multiclass_nms).
        offset: box width convention of the IoU (det_ops.nms).

    Returns:
        dict(boxes Tensor[B, M, 4], scores Tensor[B, M], labels int64 Tensor[B, M] in
        0..C-1, valid bool Tensor[B, M], rows int64 Tensor[B, M]: each detection's index
        into the B x N x C candidates) with M = max_per_img, each image's detections by
        decreasing score, the valid ones first.
    """
    batch, n, num_classes = scores.shape
    candidate = scores > config.score_thr
    if config.min_size > 0:
        w = boxes[..., 2] - boxes[..., 0]
        h = boxes[..., 3] - boxes[..., 1]
        candidate = candidate & (w >= config.min_size) & (h >= config.min_size)
    masked = scores.masked_fill(~candidate, -math.inf).reshape(-1)
    flat_boxes = boxes.reshape(-1, 4)
    image = torch.arange(batch, device=scores.device)[:, None, None] * num_classes
    groups = (image + torch.arange(num_classes, device=scores.device)).expand(batch, n, -1)
    keep, _ = kernels.batched_nms_padded(
        flat_boxes,
        masked,
        groups.reshape(-1),
        config.iou_thr,
        num_groups=batch * num_classes,
        max_per_group=config.max_per_img,
        offset=offset,
    )
    keep = keep.reshape(batch, -1)  # [B, C * M], each class's kept by decreasing score
    kept = keep >= 0
    rows = keep.clamp(min=0)
    kept_scores = masked[rows].masked_fill(~kept, -math.inf)
    kept_scores, top = kept_scores.topk(config.max_per_img, dim=1)
    rows = rows.gather(1, top)
    return {
        "boxes": flat_boxes[rows],
        "scores": kept_scores,
        "labels": rows % num_classes,
        "valid": kept.gather(1, top),
        "rows": rows,
    }
