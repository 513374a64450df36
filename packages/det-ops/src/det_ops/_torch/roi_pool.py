from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.roi_pool import (
    reads_channels_last,
    roi_pool_backward_kernel,
    roi_pool_forward_kernel,
)


@torch.library.custom_op("det_ops::roi_pool", mutates_args=())
def roi_pool(
    input: Tensor, rois: Tensor, spatial_scale: float, out_h: int, out_w: int
) -> tuple[Tensor, Tensor]:
    if input.dtype in (torch.float16, torch.bfloat16):  # the kernels' RoIs are float32
        rois = rois.float()
    return roi_pool_forward_kernel(
        TORCH,
        input if reads_channels_last(input) else input.contiguous(),
        rois.contiguous(),
        spatial_scale,
        out_h,
        out_w,
    )


@roi_pool.register_fake
def _(input, rois, spatial_scale, out_h, out_w):
    shape = (rois.shape[0], input.shape[1], out_h, out_w)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)


@torch.library.custom_op("det_ops::roi_pool_backward", mutates_args=())
def roi_pool_backward(
    grad_output: Tensor,
    rois: Tensor,
    argmax: Tensor,
    input_shape: list[int],
    spatial_scale: float,
    channels_last: bool = False,
) -> Tensor:
    return roi_pool_backward_kernel(
        TORCH,
        grad_output.contiguous(),
        rois.contiguous(),
        argmax.contiguous(),
        input_shape,
        spatial_scale,
        channels_last,
    )


@roi_pool_backward.register_fake
def _(grad_output, rois, argmax, input_shape, spatial_scale, channels_last=False):
    grad = grad_output.new_empty(input_shape)
    if channels_last:
        return grad.contiguous(memory_format=torch.channels_last)
    return grad


def _setup_context(ctx, inputs, output):
    input, rois, spatial_scale, _, _ = inputs
    ctx.save_for_backward(rois, output[1])
    ctx.input_shape = list(input.shape)
    ctx.spatial_scale = spatial_scale
    ctx.channels_last = reads_channels_last(input)
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, grad_output, grad_argmax):
    rois, argmax = ctx.saved_tensors
    grad_input = torch.ops.det_ops.roi_pool_backward(
        grad_output, rois, argmax, ctx.input_shape, ctx.spatial_scale, ctx.channels_last
    )
    return grad_input, None, None, None, None


roi_pool.register_autograd(_backward, setup_context=_setup_context)
