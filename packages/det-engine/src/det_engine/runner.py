"""What the train and test command lines share: datasets, data loaders, evaluation."""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from det_engine.distributed import gather_results, get_rank, get_world_size, is_main_process
from det_engine.evaluation import coco_evaluate, voc_map
from det_engine.logging import ProgressBar

SHAPES_SCALE = (256, 192)  # the shapes dataset's own scale: its images are 320 x 240 at most
VOC_SCALE = (1000, 600)  # the 2019 zoo's Pascal VOC configs


class DataError(RuntimeError):
    """The requested dataset cannot be found."""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of both train and test: the zoo row, the data and the device."""
    parser.add_argument("model", help="zoo model, e.g. faster_rcnn")
    parser.add_argument("backbone", help="zoo backbone, e.g. r50")
    parser.add_argument("schedule", help="zoo schedule, e.g. 1x")
    parser.add_argument("--variant", default=None, help="zoo variant, e.g. gn")
    parser.add_argument(
        "--data",
        default="coco",
        help="coco, voc (Pascal VOC: train on 07+12 trainval, test on 07 test), shapes "
        "(small built-in dataset), or a COCO-format annotation JSON",
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
        help="resize limits; default the zoo row's (shapes: 256 192, voc: 1000 600)",
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


def data_files(data: str, data_root: str | None, split: str) -> tuple[Path, Path]:
    """(annotation JSON, image folder) of ``split`` ("train" or "val") for coco or ANN.json.

    Raises:
        DataError: a file or folder is missing; the message names where it looked.
    """
    if data == "coco":
        root = Path(data_root) if data_root is not None else Path("data/coco")
        ann = root / "annotations" / f"instances_{split}2017.json"
        img_dir = root / f"{split}2017"
        missing = [str(p) for p in (ann, img_dir) if not p.exists()]
        if missing:
            raise DataError(
                f"COCO not found: looked for {ann} and {img_dir} under {root.resolve()} "
                f"(missing: {', '.join(missing)}). Put COCO 2017 there, point --data-root at "
                "it, or try the small built-in dataset with --data shapes"
            )
        return ann, img_dir
    ann = Path(data)
    if not ann.is_file():
        raise DataError(
            f"--data {data}: expected coco, shapes or an existing COCO-format JSON file "
            f"(looked for {ann.resolve()})"
        )
    return ann, Path(data_root) if data_root is not None else ann.parent


def voc_years(root: Path, split: str) -> list[str]:
    """The VOC years of ``split`` under ``root``: 2007 and 2012 trainval, or 2007 test.

    For training, a year whose trainval list is missing is left out (VOC2007 alone is fine);
    at least one must be there.

    Raises:
        DataError: no list found; the message names where it looked.
    """
    candidates = ("2007", "2012") if split == "train" else ("2007",)
    image_set = "trainval" if split == "train" else "test"
    lists = {y: root / f"VOC{y}" / "ImageSets" / "Main" / f"{image_set}.txt" for y in candidates}
    found = [year for year, path in lists.items() if path.is_file()]
    if not found:
        looked = " and ".join(str(path) for path in lists.values())
        raise DataError(
            f"Pascal VOC not found: looked for {looked} (under {root.resolve()}). Put the "
            "VOCdevkit there (VOC2007/ with its test set, optionally VOC2012/), point "
            "--data-root at it, or try the small built-in dataset with --data shapes"
        )
    return found


def build_voc(data_root: str | None, split: str, train: bool, transforms: Any):
    """The VOC dataset of ``split``: VOC2007 (+ VOC2012) trainval for "train", 2007 test else."""
    from det_data import VOCDataset

    root = Path(data_root) if data_root is not None else Path("data/VOCdevkit")
    image_set = "trainval" if split == "train" else "test"
    sets = [
        VOCDataset(root, image_set, year, train=train, transforms=transforms)
        for year in voc_years(root, split)
    ]
    dataset = sets[0]
    for other in sets[1:]:
        # Records carry their own file paths: one dataset can hold both years' images.
        dataset.records.extend(other.records)
    return dataset


def image_scale(args: argparse.Namespace, cfg: Any) -> tuple[int, int]:
    """The (long, short) resize limits: --img-scale, else the dataset's or the zoo row's."""
    if args.img_scale is not None:
        return tuple(args.img_scale)
    if args.data == "shapes":
        return SHAPES_SCALE
    if args.data == "voc":
        return VOC_SCALE
    return tuple(cfg.data.img_scale)


def build_dataset(args: argparse.Namespace, cfg: Any, split: str, train: bool):
    """The dataset of ``split`` ("train" or "val") with the zoo row's transforms.

    A CocoDataset for coco, shapes and ANN.json; a VOCDataset for voc (val is VOC2007 test).
    """
    from det_data import CocoDataset, shapes, zoo_test_transforms, zoo_train_transforms

    scale = image_scale(args, cfg)
    caffe = not cfg.data.normalize.to_rgb
    transforms = (
        zoo_train_transforms(scale, caffe=caffe)
        if train
        else zoo_test_transforms(scale, caffe=caffe)
    )
    if args.data == "shapes":
        root = Path(args.data_root) if args.data_root is not None else None
        return shapes.dataset(split, train=train, transforms=transforms, root=root)
    if args.data == "voc":
        return build_voc(args.data_root, split, train, transforms)
    ann, img_dir = data_files(args.data, args.data_root, split)
    return CocoDataset(ann, img_dir, train=train, transforms=transforms)


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
def evaluate(
    model: nn.Module,
    dataset,
    device: torch.device,
    metrics: list[str],
    *,
    batch_size: int = 1,
    workers: int = 0,
) -> dict[str, float] | None:
    """Runs ``model`` over ``dataset`` (shared among ranks) and scores it.

    A COCO-format dataset is scored with COCOeval (``metrics``), a VOC one with VOC07 mAP.

    Returns:
        The metrics on rank 0, None on the other ranks.
    """
    from det_data import collate

    module = model.module if hasattr(model, "module") else model
    was_training = module.training
    module.eval()
    indices = list(range(get_rank(), len(dataset), get_world_size()))
    loader = DataLoader(
        Subset(dataset, indices), batch_size=batch_size, collate_fn=collate, num_workers=workers
    )
    bar = ProgressBar(len(indices)) if is_main_process() else None
    results: list[dict[str, Any]] = []
    for images, metas, targets in loader:
        results.extend(detect(module, images, metas, targets, device))
        if bar is not None:
            bar.update(len(metas))
    module.train(was_training)
    gathered = gather_results(results, indices, len(dataset))
    if gathered is None:
        return None
    if not hasattr(dataset, "coco"):
        return voc_metrics(gathered, dataset)
    image_ids = [int(r.image_id) for r in dataset.records]
    label_to_cat_id = [dataset.label_to_cat_id[i] for i in range(len(dataset.cat_ids))]
    return coco_evaluate(gathered, dataset.coco, image_ids, label_to_cat_id, metrics=metrics)


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
