from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.roi_align import is_channels_last, roi_align_backward_kernel, roi_align_forward_kernel


@torch.library.custom_op("det_ops::roi_align", mutates_args=())
def roi_align(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> Tensor:
    if input.dtype in (torch.float16, torch.bfloat16):  # the kernels' RoIs are float32
        rois = rois.float()
    return roi_align_forward_kernel(
        TORCH,
        input if is_channels_last(input) else input.contiguous(),
        rois.contiguous(),
        spatial_scale,
        out_h,
        out_w,
        sampling_ratio,
        aligned,
    )


@roi_align.register_fake
def _(input, rois, spatial_scale, out_h, out_w, sampling_ratio, aligned):
    return input.new_empty((rois.shape[0], input.shape[1], out_h, out_w))


@torch.library.custom_op("det_ops::roi_align_backward", mutates_args=())
def roi_align_backward(
    grad_output: Tensor,
    rois: Tensor,
    input_shape: list[int],
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
    channels_last: bool = False,
) -> Tensor:
    return roi_align_backward_kernel(
        TORCH,
        grad_output.contiguous(),
        rois.contiguous(),
        input_shape,
        spatial_scale,
        out_h,
        out_w,
        sampling_ratio,
        aligned,
        channels_last,
    )


@roi_align_backward.register_fake
def _(
    grad_output,
    rois,
    input_shape,
    spatial_scale,
    out_h,
    out_w,
    sampling_ratio,
    aligned,
    channels_last=False,
):
    grad = grad_output.new_empty(input_shape)
    if channels_last:
        return grad.contiguous(memory_format=torch.channels_last)
    return grad


def _setup_context(ctx, inputs, output):
    input, rois, *params = inputs
    ctx.save_for_backward(rois)
    ctx.input_shape = list(input.shape)
    ctx.channels_last = is_channels_last(input)
    ctx.params = params


def _backward(ctx, grad_output):
    (rois,) = ctx.saved_tensors
    grad_input = torch.ops.det_ops.roi_align_backward(
        grad_output, rois, ctx.input_shape, *ctx.params, ctx.channels_last
    )
    return grad_input, None, None, None, None, None, None


roi_align.register_autograd(_backward, setup_context=_setup_context)
