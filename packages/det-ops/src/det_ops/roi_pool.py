"""RoIPool (Fast R-CNN): max over the quantised bins of each RoI."""

from __future__ import annotations

from typing import Any

from det_ops import _C
from det_ops._arrays import (
    NUMPY,
    dtype_name,
    input_gradient,
    input_gradient_buffer,
    is_cuda,
    is_torch,
    kernels,
)
from det_ops._fx import traced_call
from det_ops.roi_align import _roi_inputs, is_channels_last

# The largest plane (height * width) whose flat indices the int32 argmax holds.
ARGMAX_LIMIT = 2**31 - 1


def roi_pool(
    input: Any, boxes: Any, output_size: int | tuple[int, int], spatial_scale: float = 1.0
) -> Any:
    """Max-pools each RoI of a feature map into a fixed grid.

    Same definition and arguments as ``torchvision.ops.roi_pool``: RoI corners are rounded to
    feature-map pixels, bins are floor/ceil cuts of the rounded RoI, and an
    empty bin gives 0.

    Args:
        input: Tensor[B, C, H, W] feature map.
        boxes: the RoIs, Tensor[K, 5] (batch_index, x1, y1, x2, y2) in image pixels, or a
            list of Tensor[L_i, 4] boxes, one per image.
        output_size: (out_h, out_w) or an int for both.
        spatial_scale: feature-map pixels per image pixel.

    Returns:
        Tensor[K, C, out_h, out_w], input's dtype.
    """
    traced = traced_call(roi_pool, (input, boxes, output_size, spatial_scale), {})
    if traced is not None:
        return traced
    op = "roi_pool"
    input, rois, (out_h, out_w), spatial_scale, dtype = _roi_inputs(
        op,
        input,
        boxes,
        output_size,
        spatial_scale,
        keep_channels_last=is_cuda(input),
        keep_half=True,
        rois_name="boxes",
    )
    if input.shape[2] * input.shape[3] > ARGMAX_LIMIT:
        raise ValueError(
            f"{op}: input planes of at most 2**31 - 1 pixels are supported (the saved argmax "
            f"is int32), got {input.shape[2]} x {input.shape[3]}"
        )
    if is_torch(input):
        import torch

        import det_ops._torch  # noqa: F401

        out, _ = torch.ops.det_ops.roi_pool(input, rois, spatial_scale, out_h, out_w)
        return out.to(dtype)
    out, _ = roi_pool_forward_kernel(NUMPY, input, rois, spatial_scale, out_h, out_w)
    return out.astype(dtype, copy=False)


def reads_channels_last(x: Any) -> bool:
    """Whether the RoIPool kernels read x in place channels-last: the CUDA ones do; the CPU
    ones read NCHW (a channels-last CPU map is copied)."""
    return is_channels_last(x) and is_cuda(x)


def roi_pool_shape(
    input_shape: Any, num_rois: int, spatial_scale: float, out_h: int, out_w: int
) -> Any:
    """The kernels' description of one RoIPool call, an `_C.RoIPoolShape`."""
    batch, channels, height, width = (int(v) for v in input_shape)
    return _C.RoIPoolShape(
        batch=batch,
        channels=channels,
        height=height,
        width=width,
        num_rois=num_rois,
        pooled_h=out_h,
        pooled_w=out_w,
        spatial_scale=spatial_scale,
    )


def roi_pool_forward_kernel(
    xp: Any, input: Any, rois: Any, spatial_scale: float, out_h: int, out_w: int
) -> tuple[Any, Any]:
    """Returns (output, argmax): argmax (int32) is the flat y * W + x of each maximum, -1 if
    its bin is empty."""
    num_rois, channels = rois.shape[0], input.shape[1]
    output = xp.empty((num_rois, channels, out_h, out_w), dtype_name(input), like=input)
    argmax = xp.empty((num_rois, channels, out_h, out_w), "int32", like=input)
    ops = kernels("roi_pool", input)
    # A channels-last tensor's pointer addresses [B, H, W, C] memory.
    forward = ops.roi_pool_forward_nhwc if reads_channels_last(input) else ops.roi_pool_forward
    forward(
        xp.code(input),
        xp.ptr(input),
        xp.ptr(rois),
        roi_pool_shape(input.shape, num_rois, spatial_scale, out_h, out_w),
        xp.ptr(output),
        xp.ptr(argmax),
    )
    return output, argmax


def roi_pool_backward_kernel(
    xp: Any,
    grad_output: Any,
    rois: Any,
    argmax: Any,
    input_shape: Any,
    spatial_scale: float,
    channels_last: bool = False,
) -> Any:
    """The gradient of the input, in grad_output's dtype; with channels_last (CUDA torch
    tensors only) it is computed and returned channels-last, the layout of the forward's
    input. A float16 or bfloat16 gradient (CUDA) is summed in a float32 buffer."""
    out_h, out_w = grad_output.shape[2], grad_output.shape[3]
    shape = roi_pool_shape(input_shape, rois.shape[0], spatial_scale, out_h, out_w)
    ops = kernels("roi_pool", grad_output)
    backward = ops.roi_pool_backward_nhwc if channels_last else ops.roi_pool_backward
    grad_input = input_gradient_buffer(xp, input_shape, grad_output, channels_last)
    backward(
        xp.code(grad_output),
        xp.ptr(grad_output),
        xp.ptr(rois),
        xp.ptr(argmax),
        shape,
        xp.ptr(grad_input),
    )
    return input_gradient(grad_input, grad_output, channels_last)
