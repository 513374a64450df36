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
import json
import math
import sys
from pathlib import Path

import torch

from det_engine.apps.cli import check_checkpoint_row, named_row
from det_engine.checkpoint import CheckpointError, resolve
from det_engine.optional_deps import MissingPackageError, require
from det_models.config import DataConfig, to_plain
from det_models.export import (
    ExportableDetector,
    ExportError,
    check_onnx_exportable,
    export_detector,
    mask_paste_style,
)

# opset 18: RoiAlign with coordinate_transformation_mode (from 16), NonMaxSuppression.
ONNX_OPSET = 18


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
        height, width = args.img_size or default_size(data)
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
    from det_models import zoo
    from det_models.checkpoint import model_from_checkpoint

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


def default_size(data: DataConfig) -> tuple[int, int]:
    """(H, W): the largest landscape input of the row's test resize, padded."""
    divisor = data.size_divisor or 1
    if data.keep_ratio:
        height, width = min(data.img_scale), max(data.img_scale)
    else:
        width, height = data.img_scale
    return -(-height // divisor) * divisor, -(-width // divisor) * divisor


def write_onnx(
    program: torch.export.ExportedProgram,
    path: str | Path,
    output_names: tuple[str, ...],
    metadata: dict[str, str] | None = None,
) -> None:
    """Writes an exported detector (det_models.export.export_detector) as an ONNX model
    whose inputs are "images" and "image_sizes" and whose outputs are output_names, with the
    det_ops ops written as standard ONNX operators (onnx_translations); metadata goes into
    the model's metadata_props (see deploy_metadata)."""
    onnx_program = torch.onnx.export(
        program,
        dynamo=True,
        custom_translation_table=onnx_translations(),
        opset_version=ONNX_OPSET,
        input_names=["images", "image_sizes"],
        output_names=list(output_names),
        verbose=False,
    )
    onnx_program.model.metadata_props.update(metadata or {})
    onnx_program.save(str(path))


def deploy_metadata(
    model: torch.nn.Module, data: DataConfig, class_names: tuple[str, ...] | None
) -> dict[str, str]:
    """What det_engine.deploy needs besides the graph, as JSON strings: the test-time
    preprocessing (det.data_config), the class names (det.class_names, null when unknown)
    and how masks are pasted (det.mask_paste, null without masks)."""
    return {
        "det.data_config": json.dumps(to_plain(data)),
        "det.class_names": json.dumps(list(class_names) if class_names else None),
        "det.mask_paste": json.dumps(mask_paste_style(model)),
    }


def onnx_translations() -> dict:
    """The det_ops ops in the graph written with standard ONNX operators.

    torch.ops.det_ops.* exist once det_models is imported (det_heads registers them).
    """
    return {
        torch.ops.det_ops.nms.default: _onnx_nms,
        torch.ops.det_ops.batched_nms.default: _onnx_batched_nms,
        torch.ops.det_ops.roi_align.default: _onnx_roi_align,
        torch.ops.det_ops.multi_level_roi_align.default: _onnx_multi_level_roi_align,
    }


# The translations are traced with onnxscript: each op(...) call below writes one ONNX node.
# Inputs are ONNX values; the op's non-tensor arguments come as Python numbers.


def _onnx_nms(boxes, scores, iou_threshold: float):
    """det_ops::nms(boxes [N, 4], scores [N]) -> kept indices [K] by decreasing score.

    NonMaxSuppression takes boxes [batch, N, 4] and scores [batch, classes, N] and returns
    rows (batch, class, box); it drops a box whose IoU with a kept one is > the threshold,
    as det_ops does, and reads (x1, y1, x2, y2) boxes as corners like (y1, x1, y2, x2).
    """
    from onnxscript import opset18 as op

    selected = op.NonMaxSuppression(
        op.Unsqueeze(boxes, [0]),
        op.Unsqueeze(scores, [0, 1]),
        op.Shape(boxes, start=0, end=1),  # keep up to all N boxes
        op.Constant(value_floats=[iou_threshold]),
    )
    return op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])


def _onnx_batched_nms(boxes, scores, idxs, iou_threshold: float):
    """det_ops::batched_nms: NMS within each category idxs, kept indices by decreasing score.

    NonMaxSuppression runs per class on scores [1, C, N]; a box takes part in its own
    category only (-inf elsewhere, below the score threshold). Its output is ordered by
    class, so the kept boxes are sorted by score afterwards.
    """
    from onnxscript import opset18 as op

    # max(idxs) + 1 categories, at least 1: the maximum of no idxs would be INT64_MIN.
    highest = op.ReduceMax(op.Concat(op.Constant(value_ints=[0]), idxs, axis=0), keepdims=1)
    num_categories = op.Add(highest, op.Constant(value_ints=[1]))
    own = op.OneHot(idxs, num_categories, op.Constant(value_ints=[0, 1]), axis=0)  # [C, N]
    category_scores = op.Where(
        op.Cast(own, to=9),  # BOOL
        op.Unsqueeze(scores, [0]),
        op.Constant(value_floats=[-math.inf]),
    )
    selected = op.NonMaxSuppression(
        op.Unsqueeze(boxes, [0]),
        op.Unsqueeze(category_scores, [0]),
        op.Shape(boxes, start=0, end=1),
        op.Constant(value_floats=[iou_threshold]),
        op.Constant(value_floats=[-3.0e38]),  # keeps every real score, drops the -inf ones
    )
    kept = op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])
    _, order = op.TopK(op.Gather(scores, kept), op.Shape(kept), largest=1, sorted=1)
    return op.Gather(kept, order)


def _onnx_roi_align(
    input, rois, spatial_scale: float, out_h: int, out_w: int, sampling_ratio: int, aligned: int
):
    """det_ops::roi_align(input [B, C, H, W], rois [K, 5]) with ONNX RoiAlign.

    The kernels' modes (det_ops.roi_align.ALIGNED_MODES): 0 (aligned=False) is RoiAlign's
    "output_half_pixel", 1 (aligned=True) its "half_pixel"; 2 ("legacy", the 2019 kernel)
    ends the RoI at (x2 + 1, y2 + 1), as here, but clamps its size at 0 where RoiAlign
    clamps at 1, so RoIs smaller than one feature-map pixel pool slightly differently.
    sampling_ratio <= 0 (adaptive) is RoiAlign's 0.
    """
    from onnxscript import opset18 as op

    boxes = op.Slice(rois, [1], [5], [1])
    if aligned == 2:
        boxes = op.Add(boxes, op.Constant(value_floats=[0.0, 0.0, 1.0, 1.0]))
    image_index = op.Cast(op.Reshape(op.Slice(rois, [0], [1], [1]), [-1]), to=7)  # INT64
    return op.RoiAlign(
        input,
        boxes,
        image_index,
        coordinate_transformation_mode="half_pixel" if aligned == 1 else "output_half_pixel",
        mode="avg",
        output_height=out_h,
        output_width=out_w,
        sampling_ratio=max(sampling_ratio, 0),
        spatial_scale=spatial_scale,
    )


def _onnx_multi_level_roi_align(
    features,
    rois,
    levels,
    spatial_scales: list[float],
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
):
    """det_ops::multi_level_roi_align(features [L maps], rois [K, 5], levels [K]): per level,
    RoiAlign of the RoIs on that level (NonZero + Gather), scattered into their rows."""
    from onnxscript import opset18 as op

    first = features[0]
    shape = op.Concat(
        op.Shape(rois, start=0, end=1),
        op.Shape(first, start=1, end=2),
        op.Constant(value_ints=[out_h, out_w]),
        axis=0,
    )
    pooled = op.Expand(op.CastLike(op.Constant(value_float=0.0), first), shape)
    for level, (feature, scale) in enumerate(zip(features, spatial_scales, strict=True)):
        rows = op.Transpose(op.NonZero(op.Equal(levels, op.Constant(value_int=level))))  # [k, 1]
        level_rois = op.Gather(rois, op.Reshape(rows, [-1]))
        level_pooled = _onnx_roi_align(
            feature, level_rois, scale, out_h, out_w, sampling_ratio, aligned
        )
        pooled = op.ScatterND(pooled, rows, level_pooled)
    return pooled
