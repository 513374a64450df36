"""The evaluation loop: a model run over a dataset (shared among ranks) and scored.

COCO-format datasets are scored with COCOeval (det_engine.evaluation.coco), VOC ones with
VOC07 11-point mAP (det_engine.evaluation.voc).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from det_engine.atomic_write import write_atomically
from det_engine.distributed import gather_results, get_rank, get_world_size, is_main_process
from det_engine.evaluation.coco import coco_evaluate
from det_engine.evaluation.voc import voc_map
from det_engine.metric_log import ProgressBar


def default_metrics(model: Any) -> list[str]:
    """The metrics of a ModelConfig: proposal (RPN), bbox, and segm with masks."""
    if model.family == "rpn":
        return ["proposal"]
    with_mask = model.roi is not None and model.roi.with_mask
    return ["bbox", "segm"] if with_mask else ["bbox"]


@torch.no_grad()
def detect(
    module: nn.Module, images, metas: list[dict], targets: list[dict], device: torch.device
) -> list[dict[str, Any]]:
    """The eval-mode model's detections of one collated batch, on the CPU.

    Detectors that say they need proposals (Fast R-CNN) get the targets' proposals.
    """
    extra = {}
    if getattr(module, "needs_proposals", False):
        extra["proposals"] = [t["proposals"][:, :4].to(device) for t in targets]
    outputs = module(images.to(device), metas, **extra)
    return [{k: v.cpu() for k, v in out.items()} for out in outputs]


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset,
    device: torch.device,
    *,
    batch_size: int = 1,
    workers: int = 0,
    collate_fn: Callable | None = None,
) -> list[dict[str, Any]] | None:
    """Runs ``model`` over ``dataset`` (shared among ranks) in eval mode.

    Args:
        collate_fn: how samples are batched (det_engine.data.collate_fn of the row: padding
            to its size divisor); default det_data.collate (multiples of 32).

    Returns:
        On rank 0 the outputs in dataset order (dicts of boxes, scores[, labels, masks] in
        original image pixels, on the CPU); None on the other ranks.
    """
    from det_data import collate

    module = model.module if hasattr(model, "module") else model
    was_training = module.training
    module.eval()
    indices = list(range(get_rank(), len(dataset), get_world_size()))
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=batch_size,
        collate_fn=collate_fn or collate,
        num_workers=workers,
    )
    bar = ProgressBar(len(indices)) if is_main_process() else None
    results: list[dict[str, Any]] = []
    for images, metas, targets in loader:
        results.extend(detect(module, images, metas, targets, device))
        if bar is not None:
            bar.update(len(metas))
    module.train(was_training)
    return gather_results(results, indices, len(dataset))


def score(results: list[dict[str, Any]], dataset, metrics: list[str]) -> dict[str, float]:
    """Scores ``results`` (one per image, in dataset order): a COCO-format dataset with
    COCOeval (``metrics``), a VOC one with VOC07 mAP."""
    if not hasattr(dataset, "coco"):
        return voc_metrics(results, dataset)
    image_ids = [int(r.image_id) for r in dataset.records]
    label_to_cat_id = [dataset.label_to_cat_id[i] for i in range(len(dataset.cat_ids))]
    return coco_evaluate(results, dataset.coco, image_ids, label_to_cat_id, metrics=metrics)


def evaluate(
    model: nn.Module,
    dataset,
    device: torch.device,
    metrics: list[str],
    *,
    batch_size: int = 1,
    workers: int = 0,
    collate_fn: Callable | None = None,
) -> dict[str, float] | None:
    """Runs ``model`` over ``dataset`` (shared among ranks) and scores it (see :func:`score`).

    Returns:
        The metrics on rank 0, None on the other ranks.
    """
    results = predict_dataset(
        model, dataset, device, batch_size=batch_size, workers=workers, collate_fn=collate_fn
    )
    return None if results is None else score(results, dataset, metrics)


def voc_metrics(results: list[dict[str, Any]], dataset) -> dict[str, float]:
    """VOC07 11-point mAP at IoU 0.5 of ``results`` on a VOC dataset; difficult objects ignored.

    Returns:
        ``{"mAP": ..., "AP_<class>": ...}`` for the classes with ground truth in the set.
    """
    annotations = []
    for record in dataset.records:
        ignore_labels = record.extra.get("ignore_labels", np.zeros(0, dtype=np.int64))
        annotations.append(
            {
                "boxes": np.concatenate([record.boxes, record.ignore_boxes]),
                "labels": np.concatenate([record.labels, ignore_labels]),
                "difficult": np.concatenate(
                    [np.zeros(len(record.boxes), bool), np.ones(len(record.ignore_boxes), bool)]
                ),
            }
        )
    scores = voc_map(results, annotations, num_classes=len(dataset.classes), use_07_metric=True)
    metrics = {"mAP": float(scores["mAP"])}
    for name, ap in zip(dataset.classes, scores["AP_per_class"], strict=True):
        if not np.isnan(ap):
            metrics[f"AP_{name}"] = float(ap)
    return metrics


def write_metrics(path: Path, metrics: dict[str, float], extra: dict[str, Any]) -> None:
    """Writes ``{**extra, "metrics": metrics}`` as JSON (atomically) and prints one line per
    metric."""
    text = json.dumps({**extra, "metrics": metrics}, indent=2) + "\n"
    write_atomically(path, lambda f: f.write(text.encode("utf-8")), what="metrics file")
    for name, value in metrics.items():
        print(f"{name}: {value:.4f}")
    print(f"metrics written to {path}", flush=True)
