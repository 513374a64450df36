"""COCO evaluation of per-image detection dicts with pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

METRICS = ("bbox", "segm", "proposal")
# Names of COCOeval.stats, in its order.
_DETECTION_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_DETECTION_NAMES += ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# With maxDets (100, 300, 1000), stats[6:12] are AR at each maxDets and AR by size at 1000.
_PROPOSAL_NAMES = ("AR@100", "AR@300", "AR@1000", "ARs@1000", "ARm@1000", "ARl@1000")
_PROPOSAL_MAX_DETS = [100, 300, 1000]


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def results_to_coco(
    results: Sequence[dict[str, Any]],
    image_ids: Sequence[int],
    label_to_cat_id: Sequence[int],
    iou_type: str = "bbox",
) -> list[dict[str, Any]]:
    """Converts per-image detection dicts to COCO results JSON entries.

    Args:
        results: one dict per image with ``boxes`` Tensor/array[N, 4] (x1, y1, x2, y2,
            original-image pixels), ``scores`` [N], ``labels`` int[N] in 0..C-1 (absent for
            proposals) and, for ``segm``, ``masks`` uint8[N, H, W].
        image_ids: COCO image id of each entry of ``results``.
        label_to_cat_id: COCO category id of each label (``label_to_cat_id[label]``).
        iou_type: ``bbox``, ``segm`` or ``proposal`` (boxes without labels; every entry
            gets the first category id, which ``useCats=0`` ignores).

    Returns:
        A list of dicts (image_id, category_id, score, and bbox [x, y, w, h] or
        segmentation RLE with ``counts`` as str), ready for ``COCO.loadRes`` or json.dump.
    """
    if iou_type not in METRICS:
        raise ValueError(f"iou_type must be one of {METRICS}, got {iou_type!r}")
    if len(results) != len(image_ids):
        raise ValueError(
            f"results has {len(results)} entries but image_ids has {len(image_ids)}; "
            "expected one result dict per image"
        )
    entries: list[dict[str, Any]] = []
    for image_id, result in zip(image_ids, results, strict=True):
        scores = _numpy(result["scores"]).astype(float).reshape(-1)
        if iou_type == "proposal":
            cat_ids = [int(label_to_cat_id[0])] * len(scores)
        else:
            if "labels" not in result:
                raise ValueError(f"image {image_id}: {iou_type} results need 'labels'")
            cat_ids = [int(label_to_cat_id[int(c)]) for c in _numpy(result["labels"]).reshape(-1)]
        if iou_type == "segm":
            if "masks" not in result:
                raise ValueError(f"image {image_id}: segm results need 'masks' uint8[N, H, W]")
            masks = _numpy(result["masks"]).astype(np.uint8)
            if masks.shape[0] != len(scores):
                raise ValueError(
                    f"image {image_id}: {masks.shape[0]} masks for {len(scores)} scores"
                )
            rles = (
                mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if len(masks) else []
            )
            for rle, score, cat_id in zip(rles, scores, cat_ids, strict=True):
                rle["counts"] = rle["counts"].decode("ascii")
                entries.append(
                    {
                        "image_id": int(image_id),
                        "category_id": cat_id,
                        "score": float(score),
                        "segmentation": rle,
                    }
                )
        else:
            boxes = _numpy(result["boxes"]).astype(float).reshape(-1, 4)
            if len(boxes) != len(scores):
                raise ValueError(f"image {image_id}: {len(boxes)} boxes for {len(scores)} scores")
            for (x1, y1, x2, y2), score, cat_id in zip(boxes, scores, cat_ids, strict=True):
                entries.append(
                    {
                        "image_id": int(image_id),
                        "category_id": cat_id,
                        "score": float(score),
                        "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    }
                )
    return entries


def coco_evaluate(
    results: Sequence[dict[str, Any]],
    coco_gt: COCO,
    image_ids: Sequence[int],
    label_to_cat_id: Sequence[int],
    metrics: Sequence[str] = ("bbox",),
    verbose: bool = False,
) -> dict[str, float]:
    """Runs COCOeval for each requested metric on the given images.

    Boxes are continuous pixel coordinates: the width is ``x2 - x1`` (no legacy ``+1``).

    Args:
        results: per-image detection dicts as in :func:`results_to_coco`.
        coco_gt: the ground truth, a ``pycocotools.coco.COCO``.
        image_ids: COCO image id of each result; only these images are evaluated.
        label_to_cat_id: COCO category id of each label 0..C-1.
        metrics: any of ``bbox``, ``segm`` (needs masks) and ``proposal`` (class-agnostic
            AR at 100/300/1000 boxes).
        verbose: print COCOeval's summary tables.

    Returns:
        Named floats ``{metric}_{name}``: for bbox/segm AP, AP50, AP75, APs, APm, APl, AR1,
        AR10, AR100, ARs, ARm, ARl; for proposal AR@100, AR@300, AR@1000, ARs@1000,
        ARm@1000, ARl@1000. With no detections at all every value is 0.0.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"metrics must be among {METRICS}, got unknown {unknown}")
    out: dict[str, float] = {}
    for metric in metrics:
        names = _PROPOSAL_NAMES if metric == "proposal" else _DETECTION_NAMES
        entries = results_to_coco(results, image_ids, label_to_cat_id, metric)
        if not entries:  # loadRes cannot take an empty list
            out.update({f"{metric}_{name}": 0.0 for name in names})
            continue
        sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        with sink:
            coco_dt = coco_gt.loadRes(entries)
            evaluator = COCOeval(coco_gt, coco_dt, "bbox" if metric == "proposal" else metric)
            evaluator.params.imgIds = [int(i) for i in image_ids]
            if metric == "proposal":
                evaluator.params.useCats = 0
                evaluator.params.maxDets = list(_PROPOSAL_MAX_DETS)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = evaluator.stats[6:12] if metric == "proposal" else evaluator.stats
        out.update({f"{metric}_{name}": float(v) for name, v in zip(names, stats, strict=True)})
    return out
