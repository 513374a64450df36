"""Detections of one image from a dense head's per-level scores and deltas."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from det_heads.coders import DeltaXYWHCoder
from det_heads.inputs import image_size, to_original
from det_heads.postprocess import NMSConfig, candidate_nms, multiclass_nms


def dense_detections(
    scores: Sequence[Tensor],
    deltas: Sequence[Tensor],
    anchors: Sequence[Tensor],
    meta: dict,
    *,
    coder: DeltaXYWHCoder,
    nms_pre: int,
    nms: NMSConfig,
    candidates: str = "anchor",
) -> dict[str, Tensor]:
    """Top anchors of each level decoded, clipped, rescaled to the original image and NMS'd.

    Candidates per level are either the nms_pre anchors of best class score, every class of
    them then thresholded (candidates "anchor", the 2019 code's anchor_head.py
    get_bboxes_single), or the nms_pre best (anchor, class) pairs above the score threshold
    (candidates "pair", torchvision's retinanet.py postprocess_detections). NMS uses the
    coder's box width convention.

    Args:
        scores: per level Tensor[N_l, C] class probabilities (background excluded).
        deltas: per level Tensor[N_l, 4].
        anchors: per level Tensor[N_l, 4] (x1, y1, x2, y2), input pixels.
        meta: the image's dict(img_shape[, scale_factor]).
        coder: decodes deltas.
        nms_pre: anchors kept per level by their best class score (<= 0: all).
        nms: multiclass NMS settings.
        candidates: "anchor" or "pair".

    Returns:
        dict(boxes Tensor[K, 4] in original-image pixels, scores Tensor[K], labels int64[K]).
    """
    if candidates == "pair":
        return _pair_detections(scores, deltas, anchors, meta, coder, nms_pre, nms)
    if candidates != "anchor":
        raise ValueError(
            f"dense_detections: candidates must be 'anchor' or 'pair', got {candidates!r}"
        )
    all_boxes, all_scores = [], []
    for s, d, a in zip(scores, deltas, anchors, strict=True):
        if nms_pre > 0:
            # sym_min, not an if on the size: an exported graph serves every image size.
            top = s.max(dim=1).values.topk(torch.sym_min(nms_pre, s.shape[0])).indices
            s, d, a = s[top], d[top], a[top]
        all_boxes.append(coder.decode(a, d, image_size(meta)))
        all_scores.append(s)
    boxes = to_original(torch.cat(all_boxes), meta)
    boxes, det_scores, labels = multiclass_nms(
        boxes, torch.cat(all_scores), nms, offset=coder.offset
    )
    return {"boxes": boxes, "scores": det_scores, "labels": labels}


def _pair_detections(scores, deltas, anchors, meta, coder, nms_pre, nms) -> dict[str, Tensor]:
    all_boxes, all_scores, all_labels = [], [], []
    for s, d, a in zip(scores, deltas, anchors, strict=True):
        flat = s.flatten()
        above = (flat > nms.score_thr).nonzero().flatten()
        top_scores, order = flat[above].topk(
            torch.sym_min(nms_pre, above.numel()) if nms_pre > 0 else above.numel()
        )
        pairs = above[order]
        rows, labels = pairs // s.shape[1], pairs % s.shape[1]
        all_boxes.append(coder.decode(a[rows], d[rows], image_size(meta)))
        all_scores.append(top_scores)
        all_labels.append(labels)
    boxes = to_original(torch.cat(all_boxes), meta)
    boxes, det_scores, labels = candidate_nms(
        boxes, torch.cat(all_scores), torch.cat(all_labels), nms, offset=coder.offset
    )
    return {"boxes": boxes, "scores": det_scores, "labels": labels}
