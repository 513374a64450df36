"""``python -m det_engine.deploy MODEL.onnx IMAGE...``: run an exported detector in onnxruntime.

The ONNX file of ``python -m det_engine.export --format onnx`` carries its row's test-time
preprocessing and class names, so image files are all it needs; the detections are printed
in the original image's pixels::

    python -m det_engine.deploy quickstart.onnx demo.jpg --score-thr 0.3

From Python: ``det_engine.onnx_detector.OnnxDetector``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from det_engine.onnx_detector import OnnxDetector
from det_engine.optional_deps import MissingPackageError, require


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="the .onnx file of python -m det_engine.export")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--score-thr", type=float, default=0.3, help="detections to print")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require("onnxruntime", purpose="python -m det_engine.deploy")
        detector = OnnxDetector(args.model, threads=args.threads)
        for image in args.images:
            detections = detector(image)
            keep = detections["scores"] >= args.score_thr
            print(f"{image}: {int(keep.sum())} detections with score >= {args.score_thr}")
            labels = detections.get("labels", np.zeros(len(keep), dtype=np.int64))
            for box, score, label in zip(
                detections["boxes"][keep], detections["scores"][keep], labels[keep], strict=True
            ):
                name = detector.class_names[label] if detector.class_names else str(label)
                corners = ", ".join(f"{v:.1f}" for v in box)
                print(f"  {name:<12} {score:.3f}  [{corners}]")
    except (FileNotFoundError, ValueError, MissingPackageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
