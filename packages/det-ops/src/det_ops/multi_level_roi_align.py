"""RoIAlign over a feature pyramid: each RoI pooled from its level's map, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from det_ops import _C, _checks
from det_ops._arrays import (
    NUMPY,
    dtype_name,
    input_gradient,
    input_gradient_buffer,
    is_torch,
    kernels,
)
from det_ops._fx import traced_call
from det_ops.roi_align import aligned_mode, is_channels_last, map_for_kernels, roi_align_shape

MAX_LEVELS = _C.MAX_FEATURE_LEVELS
"""The most feature levels one call takes."""


def multi_level_roi_align(
    features: Sequence[Any],
    rois: Any,
    levels: Any,
    output_size: int | tuple[int, int],
    spatial_scales: Sequence[float],
    sampling_ratio: int = -1,
    aligned: bool | str = False,
) -> Any:
    """RoIAlign of each RoI on the feature map of its level, every level in one call.

    The result equals ``roi_align(features[l], rois[levels == l], output_size,
    spatial_scales[l], sampling_ratio, aligned)`` for each level l, in the RoIs' order; on
    CUDA it is one kernel launch forward and one backward for all levels, with no host
    synchronisation. The maps are read in place, NCHW or channels-last (each level its
    own; another layout is copied to NCHW), and each map gets its gradient.

    Args:
        features: 1 to MAX_LEVELS (8) maps Tensor[B, C, H_l, W_l] (or ndarrays), one per
            level, of one dtype and device, with the same B and C.
        rois: Tensor[K, 5] (batch_index, x1, y1, x2, y2) in image pixels.
        levels: integer Tensor[K], the level of each RoI (computed by the caller, e.g. by
            FPN's level mapping). Checked on the CPU; on CUDA (and under torch.compile) a
            RoI outside ``[0, len(features))`` pools to zeros instead.
        output_size: (out_h, out_w) or an int for both.
        spatial_scales: feature-map pixels per image pixel, one per level (1/4, 1/8, ...).
        sampling_ratio: sampling points per bin and axis; <= 0: adaptive.
        aligned: False, True or "legacy", as ``roi_align``.

    Returns:
        Tensor[K, C, out_h, out_w] in the maps' dtype (float16 and bfloat16 read natively
        on CUDA, computed in float32 elsewhere).
    """
    traced = traced_call(
        multi_level_roi_align,
        (features, rois, levels, output_size, spatial_scales, sampling_ratio, aligned),
        {},
    )
    if traced is not None:
        return traced
    op = "multi_level_roi_align"
    features = _feature_maps(op, features)
    first = features[0]
    rois = _checks.rois(op, rois, like=first)
    _checks.same_device(op, **{"features[0]": first, "rois": rois})
    levels = _checks.array(op, "levels", levels, like=first)
    _checks.same_device(op, **{"features[0]": first, "levels": levels})
    _checks.shape(op, "levels", _checks.integer(op, "levels", levels), (None,), "[K]")
    _checks.same_length(op, ("rois", "levels"), rois, levels)
    levels = _checks.cast(levels, "int64")
    out_h, out_w = _checks.pair(op, "output_size", output_size)
    scales = _spatial_scales(op, spatial_scales, len(features))
    sampling_ratio = _checks.integer_value(op, "sampling_ratio", sampling_ratio)
    aligned = aligned_mode(op, aligned)
    _checks.batch_indices(op, rois, first.shape[0])
    _checks.group_indices(op, "levels", levels, len(features), "the levels of features")
    dtype = first.dtype
    compute = _checks.compute_dtype(*features, rois)
    features = [map_for_kernels(f, compute, True, True) for f in features]
    rois = _checks.cast(rois, compute)
    if is_torch(first):
        import torch

        import det_ops._torch  # noqa: F401

        out = torch.ops.det_ops.multi_level_roi_align(
            features, rois, levels, scales, out_h, out_w, sampling_ratio, aligned
        )
        return out.to(dtype)
    out = multi_level_roi_align_forward_kernel(
        NUMPY, features, rois, levels, scales, out_h, out_w, sampling_ratio, aligned
    )
    return out.astype(dtype, copy=False)


def _feature_maps(op: str, features: Any) -> list[Any]:
    """The maps checked: a non-empty list of at most MAX_LEVELS [B, C, H, W] arrays of one
    kind, dtype and device, sharing B and C."""
    if not isinstance(features, (list, tuple)):
        raise TypeError(
            f"{op}: features must be a list of feature maps, one per level, "
            f"got {type(features).__name__}"
        )
    if not 1 <= len(features) <= MAX_LEVELS:
        raise ValueError(f"{op}: features must hold 1 to {MAX_LEVELS} levels, got {len(features)}")
    maps = [_checks.array(op, "features[0]", features[0])]
    maps += [
        _checks.array(op, f"features[{i}]", f, like=maps[0]) for i, f in enumerate(features) if i
    ]
    for i, f in enumerate(maps):
        _checks.feature_map(op, f"features[{i}]", f)
        _checks.same_device(op, **{"features[0]": maps[0], f"features[{i}]": f})
        if dtype_name(f) != dtype_name(maps[0]):
            raise TypeError(
                f"{op}: features must share one dtype, but features[0] is "
                f"{dtype_name(maps[0])} and features[{i}] {dtype_name(f)}"
            )
        if tuple(f.shape[:2]) != tuple(maps[0].shape[:2]):
            raise ValueError(
                f"{op}: features must share batch size and channels [B, C], but features[0] "
                f"has {list(maps[0].shape[:2])} and features[{i}] {list(f.shape[:2])}"
            )
    _checks.on_cpu_or_cuda(op, maps[0])
    return maps


def _spatial_scales(op: str, spatial_scales: Any, num_levels: int) -> list[float]:
    if not isinstance(spatial_scales, (list, tuple)) or len(spatial_scales) != num_levels:
        raise ValueError(
            f"{op}: spatial_scales must be a list of {num_levels} numbers, one per level of "
            f"features, got {spatial_scales!r}"
        )
    scales = [_checks.real(op, f"spatial_scales[{i}]", s) for i, s in enumerate(spatial_scales)]
    for i, s in enumerate(scales):
        if s <= 0:
            raise ValueError(f"{op}: spatial_scales[{i}] must be > 0, got {s}")
    return scales


def level_shapes(
    feature_shapes: Sequence[Sequence[int]],
    num_rois: int,
    spatial_scales: Sequence[float],
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> list[Any]:
    """The kernels' description of each level, an `_C.RoIAlignShape` per map."""
    return [
        roi_align_shape(shape, num_rois, scale, out_h, out_w, sampling_ratio, aligned)
        for shape, scale in zip(feature_shapes, spatial_scales, strict=True)
    ]


def multi_level_roi_align_forward_kernel(
    xp: Any,
    features: Sequence[Any],
    rois: Any,
    levels: Any,
    spatial_scales: Sequence[float],
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> Any:
    first = features[0]
    num_rois, channels = rois.shape[0], first.shape[1]
    output = xp.empty((num_rois, channels, out_h, out_w), dtype_name(first), like=first)
    shapes = level_shapes(
        [f.shape for f in features],
        num_rois,
        spatial_scales,
        out_h,
        out_w,
        sampling_ratio,
        aligned,
    )
    kernels("multi_level_roi_align", first).multi_level_roi_align_forward(
        xp.code(first),
        [xp.ptr(f) for f in features],
        xp.ptr(rois),
        xp.ptr(levels),
        shapes,
        [is_channels_last(f) for f in features],
        xp.ptr(output),
    )
    return output


def multi_level_roi_align_backward_kernel(
    xp: Any,
    grad_output: Any,
    rois: Any,
    levels: Any,
    feature_shapes: Sequence[Sequence[int]],
    channels_last: Sequence[bool],
    spatial_scales: Sequence[float],
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> list[Any]:
    """The gradient of each level's map, in grad_output's dtype and the map's layout (a
    float16 or bfloat16 gradient is summed in a float32 buffer, rounded once)."""
    shapes = level_shapes(
        feature_shapes, rois.shape[0], spatial_scales, out_h, out_w, sampling_ratio, aligned
    )
    buffers = [
        input_gradient_buffer(xp, shape, grad_output, last)
        for shape, last in zip(feature_shapes, channels_last, strict=True)
    ]
    kernels("multi_level_roi_align", grad_output).multi_level_roi_align_backward(
        xp.code(grad_output),
        xp.ptr(grad_output),
        xp.ptr(rois),
        xp.ptr(levels),
        shapes,
        list(channels_last),
        [xp.ptr(b) for b in buffers],
    )
    return [
        input_gradient(b, grad_output, last) for b, last in zip(buffers, channels_last, strict=True)
    ]
