"""The arguments the command lines share, each defined once with one meaning: the zoo row
and data (train, test, export), the device and loader (train, test, quickstart), a training
run's (train and quickstart: work dir, resume, seed, threads, amp, logging, the data check);
and the datasets they name (through det_engine.data)."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any

from det_engine import data
from det_engine.data import DataError
from det_engine.distributed import stop_on_errors
from det_engine.runtime import AMP_CHOICES
from det_models import DataConfig

__all__ = [
    "DataError",
    "add_common_arguments",
    "add_data_check_arguments",
    "add_data_root_argument",
    "add_device_arguments",
    "add_run_arguments",
    "build_dataset",
    "check_checkpoint_row",
    "named_row",
    "row_data_config",
    "stop_on_errors",
]


def add_common_arguments(parser: argparse.ArgumentParser, row_required: bool = True) -> None:
    """Arguments of both train and test: the zoo row, the data and the device.

    ``row_required=False``: MODEL BACKBONE SCHEDULE may be left out (test: the checkpoint
    names its run).
    """
    nargs = None if row_required else "?"
    parser.add_argument("model", nargs=nargs, help="zoo model, e.g. faster_rcnn")
    parser.add_argument("backbone", nargs=nargs, help="zoo backbone, e.g. r50")
    parser.add_argument("schedule", nargs=nargs, help="zoo schedule, e.g. 1x")
    parser.add_argument("--variant", default=None, help="zoo variant, e.g. gn")
    parser.add_argument(
        "--data",
        default=None,
        help="coco, voc (Pascal VOC: train on 07+12 trainval, test on 07 test), shapes "
        "(small built-in dataset), or a COCO-format annotation JSON; default the row's "
        "dataset (coco, or voc for the VOC rows)",
    )
    add_data_root_argument(parser)
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
        help="Fast R-CNN: proposals of the training images (.npz/.json/.pt per image id, or "
        "a 2019 zoo .pkl, read data-only); default the row's file under the data root",
    )
    parser.add_argument(
        "--proposals-test",
        default=None,
        metavar="FILE",
        help="Fast R-CNN: proposals of the test images; default the row's file",
    )


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-root``: where the data lives (train, test, quickstart)."""
    parser.add_argument(
        "--data-root",
        default=None,
        help="coco: the folder holding annotations/, train2017/, val2017/ (default data/coco); "
        "voc: the VOCdevkit folder holding VOC2007/ and VOC2012/ (default data/VOCdevkit); "
        "shapes: where the dataset is generated (default $DET_DATA_HOME/shapes/v1); "
        "ANN.json: the image folder (default the JSON's folder)",
    )


def add_device_arguments(parser: argparse.ArgumentParser, *, workers: int = 2) -> None:
    """``--device`` (default CUDA when available, else the CPU) and ``--workers`` (data loader
    processes; ``workers``: the command's default)."""
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default cuda when a GPU is available, else cpu; under torchrun each process "
        "takes its LOCAL_RANK's GPU",
    )
    parser.add_argument(
        "--workers", type=int, default=workers, help=f"data loader processes (default {workers})"
    )


def add_run_arguments(
    parser: argparse.ArgumentParser, *, work_dir: str, workers: int, amp: str
) -> None:
    """The arguments of a training run (train and quickstart; det_engine.run): the device and
    loader, --work-dir, --resume, --seed, --threads, --amp, --log-interval, --tensorboard
    and the data check's.

    Args:
        parser: the command's parser.
        work_dir: the default work dir, for the help.
        workers: the default --workers.
        amp: the default --amp.
    """
    add_device_arguments(parser, workers=workers)
    parser.add_argument("--work-dir", default=None, help=f"default {work_dir}")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="CKPT",
        help="continue from CKPT (a checkpoint or a work dir: its latest), or without a value "
        "from the work dir's latest checkpoint",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds python, numpy and torch (+ the rank)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        default=amp,
        help="autocast in training: bf16, fp16 (with a GradScaler; CUDA only), off, or auto "
        f"(bf16 where the device computes it natively: AVX512-BF16 or AMX CPUs, GPUs with "
        f"bf16; else off); default {amp}",
    )
    parser.add_argument("--log-interval", type=int, default=50, help="iterations per log line")
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log scalars for TensorBoard into WORK_DIR/tensorboard (needs tensorboard)",
    )
    add_data_check_arguments(parser)


def row_data_config(args: argparse.Namespace, cfg: Any) -> tuple[str, DataConfig]:
    """(data source, the DataConfig a run of the zoo config ``cfg`` uses): ``--data`` (else
    the row's dataset) and the row's DataConfig at ``--img-scale``, else at a scale set with
    ``--set data.img_scale=``, else at the source's scale (det_engine.data.data_config_for)."""
    from det_models import zoo

    source = data.data_source(cfg.data, getattr(args, "data", None))
    img_scale = getattr(args, "img_scale", None)
    if img_scale is None and cfg.data.img_scale != zoo.get(*cfg.key).data.img_scale:
        img_scale = cfg.data.img_scale
    return source, data.data_config_for(cfg.data, source, img_scale)


def build_dataset(
    args: argparse.Namespace,
    source: str,
    data_config: DataConfig,
    family: str,
    split: str,
    train: bool,
    exclude_ids: Collection[int] = (),
):
    """The dataset of ``split`` ("train" or "val") from ``source`` with ``data_config``'s
    transforms, and the proposal files of a Fast R-CNN.

    Args:
        args: --data-root, --proposals-train, --proposals-test.
        source: coco, voc, shapes or an annotation JSON.
        data_config: the run's data pipeline.
        family: the model family (fast_rcnn reads proposals).
        split: "train" or "val".
        train: training transforms and filters.
        exclude_ids: image ids left out (the data check's bad images, --skip-bad-images).

    Raises:
        DataError: data or a proposals file is missing; the message says what to do.
    """
    given = getattr(args, "proposals_train" if split == "train" else "proposals_test", None)
    root = getattr(args, "data_root", None)
    proposals = data.proposal_file(
        data_config,
        needs_proposals=family == "fast_rcnn",
        model=family,
        source=source,
        root=root,
        split=split,
        given=given,
    )
    return data.build_dataset(
        data_config, source, root, split, train=train, proposals=proposals, exclude_ids=exclude_ids
    )


def add_data_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The pre-flight data check's flags (train and quickstart)."""
    parser.add_argument(
        "--skip-data-check",
        action="store_true",
        help="start training without first checking every image and annotation",
    )
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="when the data check finds problems, train without the images concerned "
        "(and say how many) instead of stopping",
    )
    parser.add_argument(
        "--check-workers",
        type=int,
        default=None,
        metavar="N",
        help="processes decoding images for the data check (default: the CPUs at hand)",
    )
    parser.add_argument(
        "--max-skipped-images",
        type=int,
        default=10,
        metavar="N",
        help="images that may fail to load during training (changed after the check), each "
        "skipped with a warning and counted in the log; one more stops the run (default 10)",
    )


def named_row(args: argparse.Namespace) -> tuple[str, str, str] | None:
    """The zoo row named by MODEL BACKBONE SCHEDULE, or None when left out.

    Raises:
        ValueError: only part of the row is named.
    """
    row = (args.model, args.backbone, args.schedule)
    if any(row) and not all(row):
        raise ValueError("name the zoo row whole (MODEL BACKBONE SCHEDULE) or leave it out")
    return row if all(row) else None


def check_checkpoint_row(args: argparse.Namespace, run: Any, what: str) -> None:
    """Raises ValueError when the command line names a zoo row other than the checkpoint's
    (``run``: its RunConfig); ``what``: the command's verb, for the message."""
    row = named_row(args)
    if row is not None and run.key is not None and (*row, args.variant) != tuple(run.key):
        named = " ".join(p for p in (*row, args.variant) if p)
        raise ValueError(
            f"{args.ckpt} is a checkpoint of {run.name} (zoo row {run.key}), not of {named}; "
            f"leave the row out to {what} the checkpoint's own"
        )
