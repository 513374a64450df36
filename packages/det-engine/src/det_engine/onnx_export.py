"""A detector exported for deployment written as an ONNX model: the det_ops ops translated to
standard ONNX operators (NonMaxSuppression, RoiAlign), and the metadata
det_engine.onnx_detector reads (the row's preprocessing, class names, mask pasting).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from det_models import DataConfig, mask_paste_style, to_plain

# opset 18: RoiAlign with coordinate_transformation_mode (from 16), NonMaxSuppression.
ONNX_OPSET = 18


def default_input_size(data: DataConfig) -> tuple[int, int]:
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
        torch.ops.det_ops.batched_nms_padded.default: _onnx_batched_nms_padded,
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


def _onnx_batched_nms_padded(
    boxes, scores, groups, iou_threshold: float, num_groups: int, max_per_group: int
):
    """det_ops::batched_nms_padded -> (keep [G, M] padded with -1, counts [G]).

    NonMaxSuppression with one class per group keeps up to M boxes per class; a box takes
    part in its own group only (-inf elsewhere, below the score threshold, as are -inf and
    NaN scores). Its rows are sorted by group (it lists them by class, but the order is the
    runtime's), and each kept box is written at its rank within its group.
    """
    from onnxscript import opset18 as op

    own = op.OneHot(
        groups, op.Constant(value_ints=[num_groups]), op.Constant(value_ints=[0, 1]), axis=0
    )
    group_scores = op.Where(
        op.Cast(own, to=9),  # BOOL
        op.Unsqueeze(scores, [0]),
        op.Constant(value_floats=[-math.inf]),
    )
    selected = op.NonMaxSuppression(
        op.Unsqueeze(boxes, [0]),
        op.Unsqueeze(group_scores, [0]),
        op.Constant(value_ints=[max_per_group]),
        op.Constant(value_floats=[iou_threshold]),
        op.Constant(value_floats=[-3.0e38]),  # every real score, not the -inf ones
    )
    group = op.Reshape(op.Slice(selected, [1], [2], [1]), [-1])
    kept = op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])
    # Sorted by group (what the rank below needs); within a group by decreasing score
    # where float32 tells them apart (the heads re-sort what they gather by score).
    kept_scores = op.Clip(
        op.Gather(scores, kept), op.Constant(value_float=0.0), op.Constant(value_float=1.0)
    )
    key = op.Sub(op.Mul(op.Cast(group, to=1), op.Constant(value_float=2.0)), kept_scores)
    _, order = op.TopK(key, op.Shape(key), largest=0, sorted=1)
    group, kept = op.Gather(group, order), op.Gather(kept, order)
    one_hot = op.OneHot(
        group, op.Constant(value_ints=[num_groups]), op.Constant(value_ints=[0, 1]), axis=1
    )
    counts = op.ReduceSum(one_hot, op.Constant(value_ints=[0]), keepdims=0)
    starts = op.CumSum(counts, op.Constant(value_int=0), exclusive=1)
    ones = op.Expand(op.Constant(value_ints=[1]), op.Shape(group))
    position = op.CumSum(ones, op.Constant(value_int=0), exclusive=1)
    rank = op.Sub(position, op.Gather(starts, group))
    keep = op.Expand(
        op.Constant(value_ints=[-1]), op.Constant(value_ints=[num_groups, max_per_group])
    )
    positions = op.Concat(op.Unsqueeze(group, [1]), op.Unsqueeze(rank, [1]), axis=1)
    return op.ScatterND(keep, positions, kept), counts
