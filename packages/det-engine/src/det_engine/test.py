"""``python -m det_engine.test MODEL BACKBONE SCHEDULE --ckpt CKPT``: evaluate a checkpoint.

COCO-format data (coco, shapes, ANN.json) is scored with COCOeval, ``--data voc`` (VOC2007
test) with VOC07 11-point mAP at IoU 0.5.

Also under ``torchrun``: every rank evaluates a share of the images, rank 0 scores them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from det_engine import checkpoint as ckpt
from det_engine.distributed import init_from_env
from det_engine.evaluation.coco import METRICS
from det_engine.runner import (
    DataError,
    add_common_arguments,
    build_dataset,
    eval_metrics,
    evaluate,
    pick_device,
    write_metrics,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m det_engine.test", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--ckpt", required=True, help="a det_engine checkpoint (iter_*.pth)")
    parser.add_argument(
        "--eval",
        nargs="+",
        choices=METRICS,
        default=None,
        help="COCO metrics; default bbox (+segm for masks); --data voc is scored with VOC mAP",
    )
    parser.add_argument("--out", default=None, help="metrics JSON (default next to the ckpt)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from det_models import zoo

    device = pick_device(args.device)
    dist_info = init_from_env()
    if dist_info.world_size > 1 and device.type == "cuda":
        device = dist_info.device
    if args.data == "voc" and args.eval:
        message = "--eval names COCO metrics; --data voc is scored with VOC mAP"
        print(f"error: {message}", file=sys.stderr)
        return 2
    cfg = zoo.get(args.model, args.backbone, args.schedule, args.variant)
    try:
        data = ckpt.load(args.ckpt)
        dataset = build_dataset(args, cfg, "val", train=False)
    except (DataError, ckpt.CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    num_classes = None if cfg.model.family == "rpn" else len(dataset.classes)
    model = zoo.build(
        args.model, args.backbone, args.schedule, args.variant, num_classes=num_classes
    )
    model.load_state_dict(data["model"])
    model.to(device)
    metrics = evaluate(model, dataset, device, eval_metrics(cfg, args.eval), workers=args.workers)
    if metrics is not None:
        out = Path(args.out) if args.out else Path(args.ckpt).with_suffix(".eval.json")
        write_metrics(out, metrics, {"checkpoint": str(args.ckpt), "iteration": data["iteration"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
