"""det_ops::deform_im2col and its backward ops (col2im for the input, col2im_coord for
offset and mask); deform_conv2d multiplies the columns with the weight in torch."""

from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.deform_conv import (
    deform_col2im_coord_kernel,
    deform_col2im_kernel,
    deform_im2col_kernel,
)


def _contiguous(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.contiguous()


@torch.library.custom_op("det_ops::deform_im2col", mutates_args=())
def deform_im2col(
    input: Tensor,
    offset: Tensor,
    mask: Tensor | None,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
) -> Tensor:
    params = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    return deform_im2col_kernel(
        TORCH, input.contiguous(), offset.contiguous(), _contiguous(mask), params
    )


@deform_im2col.register_fake
def _(input, offset, mask, kernel_h, kernel_w, *params):
    positions = offset.shape[2] * offset.shape[3]
    return input.new_empty((input.shape[0], input.shape[1] * kernel_h * kernel_w, positions))


@torch.library.custom_op("det_ops::deform_col2im", mutates_args=())
def deform_col2im(
    grad_columns: Tensor,
    offset: Tensor,
    mask: Tensor | None,
    input_shape: list[int],
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
) -> Tensor:
    params = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    return deform_col2im_kernel(
        TORCH,
        grad_columns.contiguous(),
        offset.contiguous(),
        _contiguous(mask),
        input_shape,
        params,
    )


@deform_col2im.register_fake
def _(grad_columns, offset, mask, input_shape, *params):
    return grad_columns.new_empty(input_shape)


@torch.library.custom_op("det_ops::deform_col2im_coord", mutates_args=())
def deform_col2im_coord(
    grad_columns: Tensor,
    input: Tensor,
    offset: Tensor,
    mask: Tensor | None,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
) -> tuple[Tensor, Tensor]:
    params = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    return deform_col2im_coord_kernel(
        TORCH,
        grad_columns.contiguous(),
        input.contiguous(),
        offset.contiguous(),
        _contiguous(mask),
        params,
    )


@deform_col2im_coord.register_fake
def _(grad_columns, input, offset, mask, *params):
    mask_channels = 0 if mask is None else mask.shape[1]
    grad_mask = grad_columns.new_empty(
        (offset.shape[0], mask_channels, offset.shape[2], offset.shape[3])
    )
    return grad_columns.new_empty(offset.shape), grad_mask


def _setup_context(ctx, inputs, output):
    input, offset, mask, *params = inputs
    ctx.save_for_backward(input, offset, mask)
    ctx.params = params


def _backward(ctx, grad_columns):
    input, offset, mask = ctx.saved_tensors
    need_input, need_offset, need_mask = ctx.needs_input_grad[:3]
    grad_input = grad_offset = grad_mask = None
    if need_input:
        grad_input = torch.ops.det_ops.deform_col2im(
            grad_columns, offset, mask, list(input.shape), *ctx.params
        )
    if need_offset or (need_mask and mask is not None):
        grad_offset, grad_mask = torch.ops.det_ops.deform_col2im_coord(
            grad_columns, input, offset, mask, *ctx.params
        )
        if mask is None:
            grad_mask = None
    return grad_input, grad_offset, grad_mask, *(None for _ in ctx.params)


deform_im2col.register_autograd(_backward, setup_context=_setup_context)
