"""``python -m det_engine.shapes_zoo``: every detector family trained on the shapes dataset.

Runs ``python -m det_engine.quickstart --family F`` (within its ``--budget``) for each
family (the RPN before Fast R-CNN, which learns from its proposals), then writes the table
of what each reached into MODEL_ZOO.md between the ``shapes-zoo`` markers. ``--table-only``
rewrites the table from the work dirs' eval.json files without training.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from det_engine.budget import parse_duration
from det_engine.quickstart_run import run_quickstart
from det_engine.recipes import QUICKSTART_FAMILIES as FAMILIES
from det_engine.recipes import QUICKSTART_SCHEDULE

BEGIN, END = "<!-- shapes-zoo:begin -->", "<!-- shapes-zoo:end -->"
# The RPN runs first: Fast R-CNN is trained on its proposals.
ORDER = (
    "rpn",
    "fast_rcnn",
    "faster_rcnn",
    "mask_rcnn",
    "cascade_rcnn",
    "cascade_mask_rcnn",
    "retinanet",
    "ssd",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m det_engine.shapes_zoo", description=__doc__)
    parser.add_argument("--families", nargs="+", default=list(ORDER), choices=FAMILIES)
    parser.add_argument(
        "--budget", default="10min", help="wall-clock time of each family's run (quickstart's)"
    )
    parser.add_argument(
        "--iters", type=int, default=None, help="a fixed length for every run instead of --budget"
    )
    parser.add_argument("--work-root", default="work_dirs", help="work dirs: ROOT/quickstart_F")
    parser.add_argument("--write", default="MODEL_ZOO.md", help="markdown file to update")
    parser.add_argument("--table-only", action="store_true", help="no training")
    return parser.parse_args(argv)


def command(family: str, run: dict) -> str:
    """The command line that trains ``family`` as this table's row was trained (its eval.json
    ``run``: a budget, or a fixed number of iterations)."""
    parts = ["python -m det_engine.quickstart", f"--family {family}"]
    budget = run.get("budget_seconds")
    if budget is None:
        parts.append(f"--iters {run['iterations']}")
    elif budget != 600:
        parts.append(f"--budget {budget:g}s")
    return " ".join(parts)


def table(work_root: Path, families: list[str]) -> str:
    """The markdown table of the families' eval.json files (missing runs are left out)."""
    lines = [
        "| family | backbone | iters x batch | s/iter | train min | eval s | box AP | AP50 | AP75 "
        "| mask AP | proposal AR@300 | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for family in [f for f in ORDER if f in families]:
        path = work_root / f"quickstart_{family}" / "eval.json"
        if not path.is_file():
            continue
        run = json.loads(path.read_text())
        m = run["metrics"]
        arch = "VGG16/4-BN-SSD300" if family == "ssd" else "R-18/2-FPN"

        def cell(key: str, m=m) -> str:
            return f"{m[key]:.3f}" if key in m else "-"

        # The batch the run trained with (files written before it was recorded: the recipe's).
        batch = run.get("images_per_iteration", QUICKSTART_SCHEDULE.imgs_per_gpu)
        lines.append(
            f"| {family} | {arch} | {run['iterations']} x {batch} "
            f"| {run['seconds_per_iteration']:.2f} "
            f"| {run.get('train_seconds', 0) / 60:.1f} | {run.get('eval_seconds', 0):.0f} "
            f"| {cell('bbox_AP')} | {cell('bbox_AP50')} | {cell('bbox_AP75')} "
            f"| {cell('segm_AP')} | {cell('proposal_AR@300')} | `{command(family, run)}` |"
        )
    device = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    return "\n".join(lines) + f"\n\nMeasured on: {device}, {torch.get_num_threads()} threads.\n"


def write_section(path: Path, text: str) -> None:
    """Replaces the text between the markers in ``path`` (appends the section if absent)."""
    body = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in body and END in body:
        head, rest = body.split(BEGIN, 1)
        body = head + block + rest.split(END, 1)[1]
    else:
        body = body.rstrip("\n") + ("\n\n" if body else "") + block + "\n"
    path.write_text(body)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        budget_s = parse_duration(args.budget)
    except ValueError as e:
        print(f"error: --budget: {e}", file=sys.stderr)
        return 2
    root = Path(args.work_root)
    families = [f for f in ORDER if f in args.families]
    if not args.table_only:
        for family in families:
            code = run_quickstart(
                family,
                work_dir=root / f"quickstart_{family}",
                proposals_from=root / "quickstart_rpn",
                iters=args.iters,
                budget_s=None if args.iters is not None else budget_s,
            )
            if code != 0:
                print(f"error: the {family} run failed (exit code {code})", file=sys.stderr)
                return code
    write_section(Path(args.write), table(root, families))
    print(f"table written to {args.write}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
