"""``python -m det_engine.test [MODEL BACKBONE SCHEDULE] --ckpt CKPT``: evaluate a checkpoint.

COCO-format data (coco, shapes, ANN.json) is scored with COCOeval, ``--data voc`` (VOC2007
test) with VOC07 11-point mAP at IoU 0.5. A checkpoint of ``det_engine.train`` or
``det_engine.quickstart`` holds its run record (model with its ``--set`` overrides, data
pipeline, data source, classes), so the model and data are those it was trained with and
the zoo row may be left out. A released 2019 zoo
checkpoint (mmdetection v0.6 .pth) is converted and tested with the 2019 box conventions and
resize, as the zoo measured it::

    python -m det_engine.test faster_rcnn r50 1x --ckpt faster_rcnn_r50_fpn_1x_20181010-3d1b3351.pth

An RPN's proposals can be written for Fast R-CNN (``--proposals-out FILE.npz``, ``.json`` or
``.pt``: per image id an array of [x1, y1, x2, y2, score] in original-image pixels, best
first), for the training images with ``--split train`` and for the test images with
``--split val``::

    python -m det_engine.test rpn r50 1x --ckpt RPN.pth --split train \\
        --proposals-out proposals_train.npz
    python -m det_engine.train fast_rcnn r50 1x --proposals-train proposals_train.npz \\
        --proposals-test proposals_val.npz

Also under ``torchrun``: every rank evaluates a share of the images, rank 0 scores them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from det_engine.apps.cli import (
    DataError,
    add_common_arguments,
    add_device_arguments,
    build_dataset,
    check_checkpoint_row,
    named_row,
    row_data_config,
    stop_on_errors,
)
from det_engine.checkpoint import CheckpointError, resolve
from det_engine.data import collate_fn, data_config_for
from det_engine.distributed import init_from_env
from det_engine.evaluation.coco import METRICS
from det_engine.evaluation.loop import default_metrics, predict_dataset, score, write_metrics
from det_engine.runtime import DeviceError, pick_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.test",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser, row_required=False)
    add_device_arguments(parser)
    parser.add_argument(
        "--ckpt",
        required=True,
        help="a det_engine checkpoint (iter_*.pth of train or quickstart, or their work dir: its "
        "latest; it names its run, so MODEL BACKBONE SCHEDULE may be left out), or a released "
        "2019 zoo checkpoint of the named row",
    )
    parser.add_argument(
        "--split",
        choices=("val", "train"),
        default="val",
        help="the images to run on: the row's test set (val) or its training sets (train, "
        "every image, e.g. to write their proposals)",
    )
    parser.add_argument(
        "--eval",
        nargs="+",
        choices=METRICS,
        default=None,
        help="COCO metrics; default bbox (+segm for masks); --data voc is scored with VOC mAP",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="metrics JSON (default next to the ckpt: CKPT.eval.json, CKPT.train.eval.json)",
    )
    parser.add_argument(
        "--proposals-out",
        default=None,
        metavar="FILE",
        help="RPN: also write its proposals of the split's images to FILE (.npz, .json or "
        ".pt), "
        "for --proposals-train / --proposals-test of a Fast R-CNN",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = pick_device(args.device)
    except DeviceError as e:
        print(f"error: --device {args.device}: {e}", file=sys.stderr)
        return 2
    dist_info = init_from_env(device=device)  # gloo for --device cpu, NCCL for cuda
    if dist_info.world_size > 1 and device.type == "cuda":
        device = dist_info.device
    if args.data == "voc" and args.eval:
        message = "--eval names COCO metrics; --data voc is scored with VOC mAP"
        print(f"error: {message}", file=sys.stderr)
        return 2
    written = (".npz", ".json", ".pt")  # det_data.save_proposals' formats: no pickles
    if args.proposals_out is not None and Path(args.proposals_out).suffix not in written:
        message = f"--proposals-out {args.proposals_out}: name a .npz, .json or .pt file"
        print(f"error: {message}", file=sys.stderr)
        return 2
    try:
        args.ckpt = str(resolve(args.ckpt))
        model, run, source, data_cfg, iteration = _model_and_data(args)
        if args.proposals_out is not None and run.model.family != "rpn":
            raise DataError(
                f"--proposals-out: {run.model.family} gives detections; proposals come from an "
                "RPN row (python -m det_engine.test rpn ...)"
            )
        dataset = build_dataset(args, source, data_cfg, run.model.family, args.split, False)
        classes = getattr(model, "num_classes", None)
        if run.model.family != "rpn" and classes != len(dataset.classes):
            raise DataError(
                f"{args.ckpt} detects {classes} classes, the {source} {args.split} set has "
                f"{len(dataset.classes)}; test on the data it was trained on ({run.dataset})"
            )
    except (DataError, CheckpointError, FileNotFoundError, ValueError) as e:
        error = str(e)
    else:
        error = None
    # A rank that cannot read the checkpoint or the data stops every rank, one message.
    if stop_on_errors(error):
        return 2
    model.to(device)
    results = predict_dataset(
        model, dataset, device, workers=args.workers, collate_fn=collate_fn(data_cfg)
    )
    if results is None:  # not rank 0
        return 0
    if args.proposals_out is not None:
        write_proposals(Path(args.proposals_out), dataset, results)
    metrics = score(results, dataset, args.eval or default_metrics(run.model))
    suffix = ".eval.json" if args.split == "val" else f".{args.split}.eval.json"
    out = Path(args.out) if args.out else Path(args.ckpt).with_suffix(suffix)
    extra = {"checkpoint": str(args.ckpt), "run": run.name, "iteration": iteration}
    write_metrics(out, metrics, {**extra, "split": args.split, "data": source})
    return 0


def _model_and_data(args: argparse.Namespace):
    """(model, run, data source, data config, iteration) of ``--ckpt``: one of our
    checkpoints (its run record), or a released 2019 zoo checkpoint of the row named on the
    command line (converted, with the 2019 box conventions and resize).

    Raises:
        CheckpointError, FileNotFoundError, ValueError: the message says what is wrong.
    """
    from det_models import is_mmdet_layout, model_from_checkpoint, read_checkpoint

    row = named_row(args)
    stored = read_checkpoint(args.ckpt)
    if "run" not in stored and is_mmdet_layout(stored):
        if row is None:
            raise ValueError(
                f"{args.ckpt} is a 2019 zoo checkpoint: name its row, e.g. "
                f"python -m det_engine.test faster_rcnn r50 1x --ckpt {args.ckpt}"
            )
        return _released(args, stored)
    model, run = model_from_checkpoint(args.ckpt)
    check_checkpoint_row(args, run, "test")
    source = args.data or run.dataset
    data_cfg = run.data
    if args.img_scale is not None or source != run.dataset:
        data_cfg = data_config_for(run.data, source, args.img_scale)
    return model, run, source, data_cfg, stored.get("iteration")


def _released(args: argparse.Namespace, weights: dict[str, Any]):
    """_model_and_data for a released 2019 zoo checkpoint."""
    from det_models import RunConfig, zoo

    # Its detections need the 2019 box conventions and resize (docs/conventions.md).
    row = (args.model, args.backbone, args.schedule, args.variant)
    model, cfg = zoo.load_released(weights, *row, source=str(args.ckpt))
    print(f"{args.ckpt}: a 2019 zoo checkpoint, converted; tested with its conventions")
    source, data_cfg = row_data_config(args, cfg)
    name = "_".join(p for p in cfg.key if p)
    run = RunConfig(
        name=name,
        model=cfg.model,
        data=data_cfg,
        schedule=cfg.schedule,
        key=cfg.key,
        dataset=source,
    )
    return model.eval(), run, source, data_cfg, None


def write_proposals(path: Path, dataset, results: list[dict]) -> Path:
    """Writes an RPN's ``results`` (dataset order) as proposals per image id."""
    from det_data import save_proposals

    proposals = {
        record.image_id: torch.cat([result["boxes"], result["scores"][:, None]], 1)
        for record, result in zip(dataset.records, results, strict=True)
    }
    save_proposals(path, proposals)
    print(f"proposals of {len(proposals)} images written to {path}", flush=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
