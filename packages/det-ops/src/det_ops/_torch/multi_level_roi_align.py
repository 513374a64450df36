from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.multi_level_roi_align import (
    multi_level_roi_align_backward_kernel,
    multi_level_roi_align_forward_kernel,
)
from det_ops.roi_align import is_channels_last


@torch.library.custom_op("det_ops::multi_level_roi_align", mutates_args=())
def multi_level_roi_align(
    features: list[Tensor],
    rois: Tensor,
    levels: Tensor,
    spatial_scales: list[float],
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> Tensor:
    if features[0].dtype in (torch.float16, torch.bfloat16):  # the kernels' RoIs are float32
        rois = rois.float()
    return multi_level_roi_align_forward_kernel(
        TORCH,
        [f if is_channels_last(f) else f.contiguous() for f in features],
        rois.contiguous(),
        levels.to(torch.int64).contiguous(),
        spatial_scales,
        out_h,
        out_w,
        sampling_ratio,
        aligned,
    )


@multi_level_roi_align.register_fake
def _(features, rois, levels, spatial_scales, out_h, out_w, sampling_ratio, aligned):
    return features[0].new_empty((rois.shape[0], features[0].shape[1], out_h, out_w))


@torch.library.custom_op("det_ops::multi_level_roi_align_backward", mutates_args=())
def multi_level_roi_align_backward(
    grad_output: Tensor,
    rois: Tensor,
    levels: Tensor,
    feature_shapes: list[int],
    channels_last: list[bool],
    spatial_scales: list[float],
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> list[Tensor]:
    """feature_shapes: the levels' [B, C, H, W], concatenated."""
    return multi_level_roi_align_backward_kernel(
        TORCH,
        grad_output.contiguous(),
        rois.contiguous(),
        levels.to(torch.int64).contiguous(),
        _split_shapes(feature_shapes),
        channels_last,
        spatial_scales,
        out_h,
        out_w,
        sampling_ratio,
        aligned,
    )


@multi_level_roi_align_backward.register_fake
def _(
    grad_output,
    rois,
    levels,
    feature_shapes,
    channels_last,
    spatial_scales,
    out_h,
    out_w,
    sampling_ratio,
    aligned,
):
    grads = []
    for shape, last in zip(_split_shapes(feature_shapes), channels_last, strict=True):
        grad = grad_output.new_empty(shape)
        grads.append(grad.contiguous(memory_format=torch.channels_last) if last else grad)
    return grads


def _split_shapes(flat: list[int]) -> list[list[int]]:
    return [list(flat[i : i + 4]) for i in range(0, len(flat), 4)]


def _setup_context(ctx, inputs, output):
    features, rois, levels, *params = inputs
    ctx.save_for_backward(rois, levels)
    ctx.feature_shapes = [size for f in features for size in f.shape]
    ctx.channels_last = [is_channels_last(f) for f in features]
    ctx.params = params


def _backward(ctx, grad_output):
    rois, levels = ctx.saved_tensors
    grads = torch.ops.det_ops.multi_level_roi_align_backward(
        grad_output, rois, levels, ctx.feature_shapes, ctx.channels_last, *ctx.params
    )
    return list(grads), None, None, None, None, None, None, None


multi_level_roi_align.register_autograd(_backward, setup_context=_setup_context)
