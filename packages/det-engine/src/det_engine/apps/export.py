"""``python -m det_engine.export [MODEL BACKBONE SCHEDULE] --ckpt CKPT --format F --out FILE``.

Exports a detector's inference for deployment: a normalised, padded image batch
float[B, 3, H, W] and each image's (height, width) before padding, int64[B, 2], in
(inputs "images" and "image_sizes"); boxes (x1, y1, x2, y2, input pixels, clipped to the
image), scores, labels (not for an RPN), 28 x 28 mask_probs (mask models) and image_index
(the image of each detection) out, all images' detections concatenated.

- ``--format pt2``: ``torch.export`` program, loaded with ``torch.export.load(FILE)`` and run
  with ``.module()(images, image_sizes)``; it calls the det_ops kernels, which
  ``import det_ops.torch_ops`` registers (no det_models or det_heads needed).
- ``--format onnx``: the ONNX exporter (``torch.onnx.export(..., dynamo=True)``) with the
  det_ops ops written as standard ONNX operators (NonMaxSuppression, RoiAlign), for
  onnxruntime or any ONNX runtime; ``python -m det_engine.deploy`` runs it on image files.

The graph takes one image size (``--img-size H W``, default the largest padded input of the
row's test resize) or, with ``--dynamic``, any height and width that are multiples of 32.
A checkpoint of ``det_engine.train`` or ``det_engine.quickstart`` names its run, so the zoo
row may be left out; without ``--ckpt`` the row is exported with fresh weights::

    python -m det_engine.export --ckpt work_dirs/quickstart_faster_rcnn \\
        --format onnx --dynamic --out quickstart.onnx

Models with deformable RoI pooling (the dpool / mdpool variants) are refused: that op has
no ONNX operator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from det_engine.apps.cli import check_checkpoint_row, named_row
from det_engine.checkpoint import CheckpointError, resolve
from det_engine.onnx_export import default_input_size, deploy_metadata, write_onnx
from det_engine.optional_deps import MissingPackageError, require
from det_models import (
    DataConfig,
    ExportableDetector,
    ExportError,
    check_onnx_exportable,
    export_detector,
    model_from_checkpoint,
    zoo,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m det_engine.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", help="zoo model, e.g. faster_rcnn")
    parser.add_argument("backbone", nargs="?", help="zoo backbone, e.g. r50")
    parser.add_argument("schedule", nargs="?", help="zoo schedule, e.g. 1x")
    parser.add_argument("--variant", default=None, help="zoo variant, e.g. gn")
    parser.add_argument(
        "--ckpt",
        default=None,
        help="a det_engine checkpoint (iter_*.pth of train or quickstart, or their work dir: its "
        "latest; it names its run, "
        "so MODEL BACKBONE SCHEDULE may be left out); none: the row with fresh weights",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="without --ckpt: classes of the fresh model (default the row's dataset's)",
    )
    parser.add_argument("--format", choices=("onnx", "pt2"), required=True)
    parser.add_argument("--out", required=True, help="file to write (.onnx or .pt2)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--img-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="the input size the graph takes (default: the row's largest padded test input)",
    )
    size.add_argument(
        "--dynamic",
        action="store_true",
        help="the graph takes any height and width that are multiples of 32",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per call (fixed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.format == "onnx":
        try:  # before the model is loaded and traced
            require("onnx", "onnxscript", purpose="--format onnx")
        except MissingPackageError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        if args.ckpt is not None:
            args.ckpt = str(resolve(args.ckpt))
        model, data, class_names = _model_and_data(args)
        # --dynamic traces on the row's own size: large enough that no map is 1 x 1, a
        # size torch.export would fix.
        height, width = args.img_size or default_input_size(data)
        divisor = data.size_divisor or 1
        if height % divisor or width % divisor or height <= 0 or width <= 0:
            raise ValueError(
                f"--img-size: H and W must be positive multiples of {divisor} (the row pads "
                f"to them), got {height} {width}"
            )
        if args.dynamic and data.size_divisor != 32:
            raise ValueError(
                "--dynamic: this row resizes every image to one size (SSD) or pads to "
                f"{data.size_divisor}, not 32; export its size with --img-size"
            )
        if args.format == "onnx":
            check_onnx_exportable(model)
        example = torch.zeros(args.batch, 3, height, width)
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        program = export_detector(model, example, dynamic=args.dynamic)
        if args.format == "pt2":
            torch.export.save(program, path)
        else:
            metadata = deploy_metadata(model, data, class_names)
            write_onnx(program, path, ExportableDetector(model).output_names, metadata)
    except (ExportError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shape = (
        f"{args.batch} x 3 x H x W (H, W multiples of 32)"
        if args.dynamic
        else f"{args.batch} x 3 x {height} x {width}"
    )
    print(f"wrote {path} ({args.format}; input {shape})")
    return 0


def _model_and_data(
    args: argparse.Namespace,
) -> tuple[torch.nn.Module, DataConfig, tuple[str, ...] | None]:
    """The model to export (eval mode), the data config of its test-time preprocessing and
    its class names (None for a fresh zoo model)."""
    row = named_row(args)
    if args.ckpt is None:
        if row is None:
            raise ValueError("name a zoo row (MODEL BACKBONE SCHEDULE) or a checkpoint (--ckpt)")
        data = zoo.get(*row, args.variant).data
        model = zoo.build(*row, args.variant, num_classes=args.num_classes)
        return model.eval(), data, None
    if args.num_classes is not None:
        raise ValueError("--num-classes: a checkpoint's model has its own classes")
    model, run = model_from_checkpoint(args.ckpt)
    check_checkpoint_row(args, run, "export")
    return model.eval(), run.data, run.class_names
