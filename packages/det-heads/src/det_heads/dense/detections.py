"""Detections of one image from a dense head's per-level scores and deltas."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from det_heads.coders import DeltaXYWHCoder
from det_heads.inputs import image_size, to_original
from det_heads.postprocess import NMSConfig, multiclass_nms


def dense_detections(
    scores: Sequence[Tensor],
    deltas: Sequence[Tensor],
    anchors: Sequence[Tensor],
    meta: dict,
    *,
    coder: DeltaXYWHCoder,
    nms_pre: int,
    nms: NMSConfig,
) -> dict[str, Tensor]:
    """Top anchors of each level decoded, clipped, rescaled to the original image and NMS'd.

    Args:
        scores: per level Tensor[N_l, C] class probabilities (background excluded).
        deltas: per level Tensor[N_l, 4].
        anchors: per level Tensor[N_l, 4] (x1, y1, x2, y2), input pixels.
        meta: the image's dict(img_shape[, scale_factor]).
        coder: decodes deltas.
        nms_pre: anchors kept per level by their best class score (<= 0: all).
        nms: multiclass NMS settings.

    Returns:
        dict(boxes Tensor[K, 4] in original-image pixels, scores Tensor[K], labels int64[K]).
    """
    all_boxes, all_scores = [], []
    for s, d, a in zip(scores, deltas, anchors, strict=True):
        if 0 < nms_pre < s.shape[0]:
            top = s.max(dim=1).values.topk(nms_pre).indices
            s, d, a = s[top], d[top], a[top]
        all_boxes.append(coder.decode(a, d, image_size(meta)))
        all_scores.append(s)
    boxes = to_original(torch.cat(all_boxes), meta)
    boxes, det_scores, labels = multiclass_nms(boxes, torch.cat(all_scores), nms)
    return {"boxes": boxes, "scores": det_scores, "labels": labels}
