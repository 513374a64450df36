from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.deform_roi_pool import (
    deform_roi_pool_backward_kernel,
    deform_roi_pool_forward_kernel,
)
from det_ops.roi_pool import reads_channels_last


def _contiguous(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.contiguous()


def _map(input: Tensor) -> Tensor:
    """The feature map as the kernels read it: channels-last in place on CUDA, else NCHW."""
    return input if reads_channels_last(input) else input.contiguous()


@torch.library.custom_op("det_ops::deform_roi_pool", mutates_args=())
def deform_roi_pool(
    input: Tensor,
    rois: Tensor,
    offset: Tensor | None,
    mask: Tensor | None,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    gamma: float,
    aligned: int,
) -> Tensor:
    return deform_roi_pool_forward_kernel(
        TORCH,
        _map(input),
        rois.contiguous(),
        _contiguous(offset),
        _contiguous(mask),
        spatial_scale,
        out_h,
        out_w,
        sampling_ratio,
        gamma,
        aligned,
    )


@deform_roi_pool.register_fake
def _(input, rois, offset, mask, spatial_scale, out_h, out_w, sampling_ratio, gamma, aligned):
    return input.new_empty((rois.shape[0], input.shape[1], out_h, out_w))


@torch.library.custom_op("det_ops::deform_roi_pool_backward", mutates_args=())
def deform_roi_pool_backward(
    grad_output: Tensor,
    input: Tensor,
    rois: Tensor,
    offset: Tensor | None,
    mask: Tensor | None,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    gamma: float,
    aligned: int,
    offset_grad: bool,
    mask_grad: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """(grad_input, grad_offset, grad_mask); a gradient not asked for is an empty [0] tensor."""
    return deform_roi_pool_backward_kernel(
        TORCH,
        grad_output.contiguous(),
        _map(input),
        rois.contiguous(),
        _contiguous(offset),
        _contiguous(mask),
        spatial_scale,
        out_h,
        out_w,
        sampling_ratio,
        gamma,
        aligned,
        offset_grad,
        mask_grad,
    )


@deform_roi_pool_backward.register_fake
def _(
    grad_output,
    input,
    rois,
    offset,
    mask,
    spatial_scale,
    out_h,
    out_w,
    sampling_ratio,
    gamma,
    aligned,
    offset_grad,
    mask_grad,
):
    num_rois = rois.shape[0]
    offset_shape = (num_rois, 2, out_h, out_w) if offset_grad and offset is not None else (0,)
    mask_shape = (num_rois, 1, out_h, out_w) if mask_grad and mask is not None else (0,)
    grad_input = grad_output.new_empty(input.shape)
    if reads_channels_last(input):
        grad_input = grad_input.contiguous(memory_format=torch.channels_last)
    return (
        grad_input,
        grad_output.new_empty(offset_shape),
        grad_output.new_empty(mask_shape),
    )


def _setup_context(ctx, inputs, output):
    input, rois, offset, mask, *params = inputs
    # The feature map is needed for the offset and mask gradients, and its
    # shape for the input gradient.
    ctx.save_for_backward(input, rois, offset, mask)
    ctx.params = params


def _backward(ctx, grad_output):
    input, rois, offset, mask = ctx.saved_tensors
    offset_grad = offset is not None and ctx.needs_input_grad[2]
    mask_grad = mask is not None and ctx.needs_input_grad[3]
    grad_input, grad_offset, grad_mask = torch.ops.det_ops.deform_roi_pool_backward(
        grad_output, input, rois, offset, mask, *ctx.params, offset_grad, mask_grad
    )
    return (
        grad_input,
        None,
        grad_offset if offset_grad else None,
        grad_mask if mask_grad else None,
        None,
        None,
        None,
        None,
        None,
        None,
    )


deform_roi_pool.register_autograd(_backward, setup_context=_setup_context)
