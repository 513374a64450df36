"""PASCAL VOC mean average precision (VOC07 11-point or area under the PR curve)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a[N, 4] and b[M, 4] (x1, y1, x2, y2, continuous pixels) -> [N, M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float64).eps)


def average_precision(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP of one class from its cumulative recall/precision (detections by falling score).

    Args:
        recall: float[K] non-decreasing.
        precision: float[K].
        use_07_metric: VOC2007's mean of max precision at recall 0, 0.1, ..., 1.0;
            otherwise the area under the monotone (max-to-the-right) precision envelope.

    Returns:
        The AP in [0, 1].
    """
    if use_07_metric:
        points = []
        for t in np.linspace(0.0, 1.0, 11):
            above = precision[recall >= t - 1e-12]
            points.append(above.max() if above.size else 0.0)
        return float(np.mean(points))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changed = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[changed] - mrec[changed - 1]) * mpre[changed]))


def voc_map(
    results: Sequence[dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    num_classes: int,
    iou_thr: float = 0.5,
    use_07_metric: bool = True,
) -> dict[str, Any]:
    """VOC mAP; detections matched to difficult boxes count neither as TP nor as FP.

    Per class, detections of all images are sorted by score; each one is matched to the
    ground-truth box of its image with the highest IoU. If that IoU >= ``iou_thr``: a
    difficult box -> ignored; an unmatched box -> TP (box now matched); else FP.
    Otherwise FP. Recall is over the non-difficult boxes.

    Args:
        results: per image dict(boxes [N, 4] x1, y1, x2, y2 pixels, scores [N], labels [N]
            in 0..C-1).
        annotations: per image (same order) dict(boxes [M, 4], labels [M], optional
            difficult bool[M]).
        num_classes: C.
        iou_thr: IoU needed for a match.
        use_07_metric: VOC07 11-point AP (True) or area AP (False, VOC2010+).

    Returns:
        ``{"mAP": float, "AP_per_class": list[float]}``; classes without non-difficult
        ground truth get NaN and are left out of the mean.
    """
    if len(results) != len(annotations):
        raise ValueError(
            f"results has {len(results)} images but annotations has {len(annotations)}"
        )
    if num_classes <= 0:
        raise ValueError(f"num_classes must be > 0, got {num_classes}")
    aps: list[float] = []
    for c in range(num_classes):
        scores, image_of, boxes = [], [], []
        gts, difficult, npos = [], [], 0
        for i, (res, ann) in enumerate(zip(results, annotations, strict=True)):
            keep = _numpy(res["labels"]).reshape(-1) == c
            scores.append(_numpy(res["scores"]).reshape(-1)[keep].astype(np.float64))
            boxes.append(_numpy(res["boxes"]).reshape(-1, 4)[keep].astype(np.float64))
            image_of.append(np.full(int(keep.sum()), i))
            gt_keep = _numpy(ann["labels"]).reshape(-1) == c
            gts.append(_numpy(ann["boxes"]).reshape(-1, 4)[gt_keep].astype(np.float64))
            diff = ann.get("difficult")
            d = np.zeros(len(gt_keep), bool) if diff is None else _numpy(diff).astype(bool)
            difficult.append(d.reshape(-1)[gt_keep])
            npos += int((~difficult[-1]).sum())
        if npos == 0:
            aps.append(float("nan"))
            continue
        all_scores = np.concatenate(scores)
        all_boxes = np.concatenate(boxes)
        all_images = np.concatenate(image_of)
        order = np.argsort(-all_scores, kind="stable")
        matched = [np.zeros(len(g), bool) for g in gts]
        tp = np.zeros(len(order))
        fp = np.zeros(len(order))
        for k, d in enumerate(order):
            img = all_images[d]
            if len(gts[img]) == 0:
                fp[k] = 1
                continue
            ious = _iou(all_boxes[d : d + 1], gts[img])[0]
            j = int(ious.argmax())
            if ious[j] < iou_thr:
                fp[k] = 1
            elif difficult[img][j]:
                continue
            elif not matched[img][j]:
                tp[k] = 1
                matched[img][j] = True
            else:
                fp[k] = 1
        counted = (tp + fp) > 0
        tp, fp = np.cumsum(tp[counted]), np.cumsum(fp[counted])
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps.append(average_precision(recall, precision, use_07_metric))
    valid = [a for a in aps if not np.isnan(a)]
    return {"mAP": float(np.mean(valid)) if valid else 0.0, "AP_per_class": aps}
