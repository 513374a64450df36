"""``python -m det_engine.data check ANN.json --data-root DIR``: check a COCO-format set.

Decodes every image named by the annotation file (in worker processes), compares its size
with the annotation's, and checks every box, category and mask; prints every problem found
with counts per kind (det_data.check_coco). Exit status 0 when the set is clean, 1 when it
has problems, 2 when the annotation file cannot be read. Training runs the same check before
its first step (``--skip-data-check`` leaves it out there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from det_engine.preflight import check_files, default_workers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m det_engine.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check a COCO-format annotation file and images")
    check.add_argument("ann_file", metavar="ANN.json", help="the COCO-format annotation file")
    check.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="the folder of the images' file_name (default: the annotation file's folder)",
    )
    check.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes decoding images (default: the CPUs at hand; 0: this process)",
    )
    check.add_argument(
        "--limit", type=int, default=10, help="problems listed per kind (all are counted)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ann_file = Path(args.ann_file)
    img_dir = Path(args.data_root) if args.data_root is not None else ann_file.parent
    workers = default_workers() if args.workers is None else args.workers
    try:
        report = check_files(ann_file, img_dir, workers=workers)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format(limit=args.limit), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
