"""``python -m det_engine.quickstart``: a detector trained, evaluated and shown in minutes on a CPU.

Trains a small detector from scratch on the built-in shapes dataset (generated on first
use, no download) within a wall-clock budget (``--budget``, default 10 minutes: the number of
iterations is planned from the measured step time and revised as the run goes), evaluates it
with the COCO metrics, and writes into the work dir:

    detections.png  validation images with the detections drawn on them
    curves.png      the losses, the learning rate and the AP (needs matplotlib; without
                    it the run says so at its start and skips the picture)
    eval.json       the COCO metrics
    log.jsonl       the training log
    iter_*.pth      the checkpoint (``python -m det_engine.demo IMAGE --ckpt ...`` and
                    ``python -m det_engine.test --ckpt ...`` reuse it)

``--iters N`` fixes the length instead (a reproducible run). The recipe (det_engine.recipes)
runs through the train command's run (det_engine.run: the same flags with the same
meanings, channels-last weights, exit codes) with a from-scratch model for a 2-core CPU;
by default (``--amp auto``) training runs under bf16 autocast where the device computes
bfloat16 natively. ``--family`` trains the same recipe for every family.
"""

from __future__ import annotations

import argparse
import sys

from det_engine.apps.cli import add_data_root_argument, add_run_arguments
from det_engine.budget import parse_duration
from det_engine.quickstart_run import run_quickstart
from det_engine.recipes import QUICKSTART_FAMILIES

FAMILIES = QUICKSTART_FAMILIES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.quickstart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--family", default="faster_rcnn", choices=FAMILIES)
    parser.add_argument(
        "--budget",
        default="10min",
        help="wall-clock time for the whole run, training and evaluation (e.g. 10min, 600s, "
        "1.5h); ignored with --iters",
    )
    parser.add_argument(
        "--iters", type=int, default=None, help="a fixed number of training iterations"
    )
    add_data_root_argument(parser)
    # No loader process by default: on 2 cores it takes time from the step's 2 threads, and
    # a batch of shapes images loads in about 10 ms in the training process.
    add_run_arguments(parser, work_dir="work_dirs/quickstart_FAMILY", workers=0, amp="auto")
    parser.add_argument("--num-pictures", type=int, default=6, help="validation images drawn")
    parser.add_argument(
        "--proposals-from",
        default="work_dirs/quickstart_rpn",
        metavar="DIR",
        help="fast_rcnn: the work dir of a `--family rpn` run whose proposals it learns from",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.iters is not None and args.iters <= 0:
        print(f"error: --iters must be > 0, got {args.iters}", file=sys.stderr)
        return 2
    try:
        budget_s = None if args.iters is not None else parse_duration(args.budget)
    except ValueError as e:
        print(f"error: --budget: {e}", file=sys.stderr)
        return 2
    return run_quickstart(
        args.family,
        work_dir=args.work_dir,
        budget_s=budget_s,
        iters=args.iters,
        data_root=args.data_root,
        proposals_from=args.proposals_from,
        num_pictures=args.num_pictures,
        device=args.device,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        resume=args.resume,
        amp=args.amp,
        log_interval=args.log_interval,
        tensorboard=args.tensorboard,
        check_data=not args.skip_data_check,
        check_workers=args.check_workers,
        skip_bad_images=args.skip_bad_images,
        max_skipped_images=args.max_skipped_images,
    )


if __name__ == "__main__":
    sys.exit(main())
