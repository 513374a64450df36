"""``python -m det_engine.test MODEL BACKBONE SCHEDULE --ckpt CKPT``: evaluate a checkpoint.

COCO-format data (coco, shapes, ANN.json) is scored with COCOeval, ``--data voc`` (VOC2007
test) with VOC07 11-point mAP at IoU 0.5. The checkpoint's ``--set`` overrides and image
scale are applied, so the model and data are those it was trained with. A released 2019 zoo
checkpoint (mmdetection v0.6 .pth) is converted and tested with the 2019 box conventions and
resize, as the zoo measured it::

    python -m det_engine.test faster_rcnn r50 1x --ckpt faster_rcnn_r50_fpn_1x_20181010-3d1b3351.pth

An RPN's proposals can be written for Fast R-CNN (``--proposals-out FILE.pkl`` or ``.json``:
per image id an array of [x1, y1, x2, y2, score] in original-image pixels, best first), for
the training images with ``--split train`` and for the test images with ``--split val``::

    python -m det_engine.test rpn r50 1x --ckpt RPN.pth --split train \\
        --proposals-out proposals_train.pkl
    python -m det_engine.train fast_rcnn r50 1x --proposals-train proposals_train.pkl \\
        --proposals-test proposals_val.pkl

Also under ``torchrun``: every rank evaluates a share of the images, rank 0 scores them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

from det_engine import checkpoint as ckpt
from det_engine.data import collate_fn
from det_engine.distributed import init_from_env
from det_engine.evaluation.coco import METRICS
from det_engine.runner import (
    DataError,
    add_common_arguments,
    build_dataset,
    eval_metrics,
    pick_device,
    predict_dataset,
    run_data_config,
    score,
    write_metrics,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.test",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--ckpt",
        required=True,
        help="a det_engine checkpoint (iter_*.pth), or the row's released 2019 zoo checkpoint",
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
        help="RPN: also write its proposals of the split's images to FILE (.pkl or .json), "
        "for --proposals-train / --proposals-test of a Fast R-CNN",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from det_engine.train import OverrideError, apply_overrides
    from det_models import zoo
    from det_models.builder import build_model
    from det_models.config import CONVENTION_PRESETS, replace_path
    from det_models.convert import from_mmdet
    from det_models.convert.common import check_fits

    device = pick_device(args.device)
    dist_info = init_from_env()
    if dist_info.world_size > 1 and device.type == "cuda":
        device = dist_info.device
    if args.data == "voc" and args.eval:
        message = "--eval names COCO metrics; --data voc is scored with VOC mAP"
        print(f"error: {message}", file=sys.stderr)
        return 2
    if args.proposals_out is not None and Path(args.proposals_out).suffix not in (".pkl", ".json"):
        message = f"--proposals-out {args.proposals_out}: name a .pkl or .json file"
        print(f"error: {message}", file=sys.stderr)
        return 2
    try:
        data, released = _load(args.ckpt)
        stored = data.get("config") or {}
        cfg = apply_overrides(
            zoo.get(args.model, args.backbone, args.schedule, args.variant),
            list(stored.get("overrides") or []),
        )
        if released is not None:
            # A released 2019 checkpoint: its detections need the 2019 box conventions and
            # resize (docs/conventions.md).
            cfg = dataclasses.replace(
                cfg,
                model=replace_path(cfg.model, "conventions", CONVENTION_PRESETS["mmdet_v0.6"]),
                data=dataclasses.replace(cfg.data, legacy_resize=True),
            )
            print(f"{args.ckpt}: a 2019 zoo checkpoint, converted; tested with its conventions")
        if args.proposals_out is not None and cfg.model.family != "rpn":
            raise DataError(
                f"--proposals-out: {cfg.model.family} gives detections; proposals come from an "
                "RPN row (python -m det_engine.test rpn ...)"
            )
        if args.img_scale is None and stored.get("img_scale"):
            args.img_scale = tuple(stored["img_scale"])  # the scale it was trained at
        source, data_cfg = run_data_config(args, cfg)
        dataset = build_dataset(args, cfg, args.split, train=False)
    except (DataError, ckpt.CheckpointError, FileNotFoundError, OverrideError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    num_classes = None if cfg.model.family == "rpn" else len(dataset.classes)
    model_cfg = cfg.model
    if num_classes is not None:
        model_cfg = replace_path(model_cfg, "num_classes", num_classes)
    model = build_model(model_cfg)
    if released is not None:
        state = from_mmdet(released, zoo.entry(*cfg.key)).state_dict
        try:
            check_fits(state, model, f"{args.ckpt} (converted for zoo row {cfg.key})")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        state = data["model"]
    model.load_state_dict(state)
    model.to(device)
    results = predict_dataset(
        model, dataset, device, workers=args.workers, collate_fn=collate_fn(data_cfg)
    )
    if results is None:  # not rank 0
        return 0
    if args.proposals_out is not None:
        write_proposals(Path(args.proposals_out), dataset, results)
    metrics = score(results, dataset, eval_metrics(cfg, args.eval))
    suffix = ".eval.json" if args.split == "val" else f".{args.split}.eval.json"
    out = Path(args.out) if args.out else Path(args.ckpt).with_suffix(suffix)
    extra = {"checkpoint": str(args.ckpt), "iteration": data["iteration"], "split": args.split}
    write_metrics(out, metrics, {**extra, "data": source})
    return 0


def _load(path: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(our checkpoint, None), or for a released 2019 zoo checkpoint (a stand-in with no
    config and no iteration, its state dict).

    Raises:
        CheckpointError: neither (the message of our checkpoint's loader).
    """
    from det_models.convert import is_mmdet_layout

    try:
        return ckpt.load(path), None
    except ckpt.CheckpointError:
        try:
            weights = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            weights = None
        if not isinstance(weights, dict) or not is_mmdet_layout(weights):
            raise
        return {"config": {}, "iteration": None}, weights


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
