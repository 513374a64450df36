"""What the train and test command lines share: datasets, data loaders, evaluation."""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from det_engine import data
from det_engine.data import DataError
from det_engine.distributed import gather_results, get_rank, get_world_size, is_main_process
from det_engine.evaluation import coco_evaluate, voc_map
from det_engine.logging import ProgressBar
from det_models.zoo.settings import DataConfig

__all__ = [
    "DataError",
    "add_common_arguments",
    "build_dataset",
    "detect",
    "eval_metrics",
    "evaluate",
    "pick_device",
    "predict_dataset",
    "run_data_config",
    "score",
    "set_seed",
    "voc_metrics",
    "write_metrics",
]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of both train and test: the zoo row, the data and the device."""
    parser.add_argument("model", help="zoo model, e.g. faster_rcnn")
    parser.add_argument("backbone", help="zoo backbone, e.g. r50")
    parser.add_argument("schedule", help="zoo schedule, e.g. 1x")
    parser.add_argument("--variant", default=None, help="zoo variant, e.g. gn")
    parser.add_argument(
        "--data",
        default=None,
        help="coco, voc (Pascal VOC: train on 07+12 trainval, test on 07 test), shapes "
        "(small built-in dataset), or a COCO-format annotation JSON; default the row's "
        "dataset (coco, or voc for the VOC rows)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="coco: the folder holding annotations/, train2017/, val2017/ (default data/coco); "
        "voc: the VOCdevkit folder holding VOC2007/ and VOC2012/ (default data/VOCdevkit); "
        "shapes: where the dataset is generated (default $DET_DATA_HOME/shapes/v1); "
        "ANN.json: the image folder (default the JSON's folder)",
    )
    parser.add_argument(
        "--img-scale",
        type=int,
        nargs=2,
        metavar=("LONG", "SHORT"),
        default=None,
        help="resize limits (SSD rows: WIDTH HEIGHT of the square resize); default the zoo "
        "row's (keep-ratio rows on shapes: 256 192, on voc: 1000 600)",
    )
    parser.add_argument(
        "--proposals-train",
        default=None,
        metavar="FILE",
        help="Fast R-CNN: proposals of the training images (.pkl/.json per image id, or a "
        "2019 zoo .pkl); default the row's file under the data root",
    )
    parser.add_argument(
        "--proposals-test",
        default=None,
        metavar="FILE",
        help="Fast R-CNN: proposals of the test images; default the row's file",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--workers", type=int, default=2, help="data loader processes")


def set_seed(seed: int) -> None:
    """Seeds python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str | None) -> torch.device:
    """``name`` (cpu/cuda), default CUDA when available; under torchrun cuda:LOCAL_RANK."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available; use --device cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def run_data_config(args: argparse.Namespace, cfg: Any) -> tuple[str, DataConfig]:
    """(data source, the DataConfig the run uses): ``--data`` (else the row's dataset) and the
    row's DataConfig at ``--img-scale``, else at a scale set with ``--set data.img_scale=``,
    else at the source's scale (det_engine.data.data_config_for)."""
    from det_models import zoo

    source = data.data_source(cfg.data, getattr(args, "data", None))
    img_scale = getattr(args, "img_scale", None)
    if img_scale is None and cfg.data.img_scale != zoo.get(*cfg.key).data.img_scale:
        img_scale = cfg.data.img_scale
    return source, data.data_config_for(cfg.data, source, img_scale)


def build_dataset(
    args: argparse.Namespace,
    cfg: Any,
    split: str,
    train: bool,
):
    """The dataset of ``split`` ("train" or "val") for the zoo config ``cfg`` and the command
    line's data arguments, through det_engine.data.

    Args:
        args: --data, --data-root, --img-scale, --proposals-train, --proposals-test.
        cfg: the (overridden) ZooConfig.
        split: "train" or "val".
        train: training transforms and filters.

    Raises:
        DataError: data or a proposals file is missing; the message says what to do.
    """
    source, data_config = run_data_config(args, cfg)
    given = getattr(args, "proposals_train" if split == "train" else "proposals_test", None)
    root = getattr(args, "data_root", None)
    proposals = data.proposal_file(
        data_config,
        needs_proposals=cfg.model.family == "fast_rcnn",
        model=cfg.model.family,
        source=source,
        root=root,
        split=split,
        given=given,
    )
    return data.build_dataset(data_config, source, root, split, train=train, proposals=proposals)


def eval_metrics(cfg: Any, requested: list[str] | None) -> list[str]:
    """The metrics to compute: requested ones, else proposal (RPN), bbox, and segm with masks."""
    if requested:
        return list(requested)
    if cfg.model.family == "rpn":
        return ["proposal"]
    return ["bbox", "segm"] if cfg.data.with_mask else ["bbox"]


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
    """Writes ``{**extra, "metrics": metrics}`` as JSON and prints one line per metric."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**extra, "metrics": metrics}, indent=2) + "\n")
    for name, value in metrics.items():
        print(f"{name}: {value:.4f}")
    print(f"metrics written to {path}", flush=True)
