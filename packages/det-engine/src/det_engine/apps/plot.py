"""``python -m det_engine.plot WORK_DIR``: loss, lr and AP curves of a training run in one PNG.

Reads ``WORK_DIR/log.jsonl`` (and ``eval.json``) through det_engine.curves; drawing needs
matplotlib (``det-engine[plot]``).
"""

from __future__ import annotations

import argparse
import sys

from det_engine.curves import plot_work_dir
from det_engine.optional_deps import require


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m det_engine.plot", description=__doc__)
    parser.add_argument("work_dir", help="a training run's folder holding log.jsonl")
    parser.add_argument("--out", default=None, help="PNG to write (default WORK_DIR/curves.png)")
    args = parser.parse_args(argv)
    try:
        require("matplotlib", purpose="python -m det_engine.plot")
        path = plot_work_dir(args.work_dir, args.out)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
