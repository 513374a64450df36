"""Deformable RoI pooling (DCN v1) and its modulated variant (DCN v2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from det_ops import _C, _checks
from det_ops._arrays import NUMPY, dtype_name, is_cuda, is_torch, kernels
from det_ops._fx import traced_call
from det_ops.roi_align import ALIGNED_MODES, _roi_inputs
from det_ops.roi_pool import reads_channels_last

# Points per bin side of the 2019 pooling (DeformRoIPoolingPack's sample_per_part).
LEGACY_SAMPLES_PER_BIN = 4


def deform_aligned_mode(op: str, aligned: Any) -> int:
    """The kernels' integer mode of deformable RoI pooling's `aligned`: True or "legacy"."""
    if isinstance(aligned, str):
        if aligned == "legacy":
            return ALIGNED_MODES["legacy"]
    elif isinstance(aligned, (bool, np.bool_)) and aligned:
        return ALIGNED_MODES[True]
    raise ValueError(
        f"{op}: aligned must be True (RoIAlign's half-pixel geometry) or 'legacy' (the 2019 "
        f"mmdetection kernel), got {aligned!r}"
    )


def deform_roi_pool(
    input: Any,
    rois: Any,
    offset: Any,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    gamma: float = 0.1,
    aligned: bool | str = True,
) -> Any:
    """Pools each RoI into a grid of bins, each bin shifted by a learned offset.

    RoIAlign with aligned=True geometry (half-pixel shift; adaptive sampling,
    ceil(roi size / output size) points per bin and axis, when sampling_ratio
    <= 0), except that bin (ph, pw) of RoI k is moved by

        dy = gamma * roi_h * offset[k, 1, ph, pw]
        dx = gamma * roi_w * offset[k, 0, ph, pw]

    feature-map pixels, roi_h and roi_w being the RoI's size on the feature
    map. The bin's sampling points are read with RoIAlign's bilinear
    interpolation (clamped to the border half a pixel out, zero beyond one
    pixel out) and averaged. With offset=None this is
    ``roi_align(..., aligned=True)``.

    aligned="legacy" computes what the 2019 mmdetection kernel computed
    (mmdet v0.6 ops/dcn/src/deform_pool_cuda_kernel.cu, one group, one part
    per bin): the RoI's corners are rounded to whole image pixels and it spans
    [x1 * scale - 0.5, (x2 + 1) * scale - 0.5] on the map (at least 0.1 wide);
    bin (ph, pw) is moved by (gamma * offset) times the RoI's size, and its
    sampling_ratio x sampling_ratio points sit at the moved bin's corner plus
    i * bin / sampling_ratio (not centred). A point more than half a pixel
    outside the map is skipped; the others are clamped into the map, read
    bilinearly and averaged (a bin with none is 0). The gradients are that
    kernel's: zero along an axis where a point is clamped or on a whole pixel.

    Args:
        input: Tensor[B, C, H, W] feature map.
        rois: Tensor[K, 5] (batch_index, x1, y1, x2, y2) in image pixels, or a
            list of Tensor[L_i, 4] boxes, one per image.
        offset: Tensor[K, 2, out_h, out_w] bin offsets (channel 0: x, 1: y) in
            units of the RoI's size, or None.
        output_size: (out_h, out_w) or an int for both.
        spatial_scale: feature-map pixels per image pixel (1/16 for stride 16).
        sampling_ratio: sampling points per bin and axis; <= 0: adaptive (not
            with aligned="legacy", where it is the 2019 sample_per_part, 4 in its configs).
        gamma: scale of the offsets (the 2019 trans_std).
        aligned: True (RoIAlign's half-pixel geometry) or "legacy" (the 2019 kernel).

    Returns:
        Tensor[K, C, out_h, out_w], input's dtype. Differentiable with respect
        to input and offset (torch tensors). RoIs with a non-finite coordinate,
        and sampling points with a non-finite shift, contribute zeros.
    """
    traced = traced_call(
        deform_roi_pool,
        (input, rois, offset, output_size, spatial_scale, sampling_ratio, gamma, aligned),
        {},
    )
    if traced is not None:
        return traced
    return _deform_roi_pool(
        "deform_roi_pool",
        input,
        rois,
        offset,
        None,
        output_size,
        spatial_scale,
        sampling_ratio,
        gamma,
        aligned,
    )


def modulated_deform_roi_pool(
    input: Any,
    rois: Any,
    offset: Any,
    mask: Any,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    gamma: float = 0.1,
    aligned: bool | str = True,
) -> Any:
    """Deformable RoI pooling with each bin scaled by a mask (DCN v2).

    ``deform_roi_pool(input, rois, offset, ...)`` times mask[k, 0, ph, pw] for
    bin (ph, pw) of RoI k (the 2019 code multiplied its pooling by the mask
    the same way).

    Args:
        input: Tensor[B, C, H, W] feature map.
        rois: Tensor[K, 5] (batch_index, x1, y1, x2, y2) in image pixels, or a
            list of Tensor[L_i, 4] boxes, one per image.
        offset: Tensor[K, 2, out_h, out_w] bin offsets (channel 0: x, 1: y) in
            units of the RoI's size, or None.
        mask: Tensor[K, 1, out_h, out_w] bin weights (usually in [0, 1]).
        output_size: (out_h, out_w) or an int for both.
        spatial_scale: feature-map pixels per image pixel (1/16 for stride 16).
        sampling_ratio: sampling points per bin and axis; <= 0: adaptive (not
            with aligned="legacy").
        gamma: scale of the offsets.
        aligned: True (RoIAlign's half-pixel geometry) or "legacy" (the 2019 kernel; see
            deform_roi_pool).

    Returns:
        Tensor[K, C, out_h, out_w], input's dtype. Differentiable with respect
        to input, offset and mask (torch tensors).
    """
    traced = traced_call(
        modulated_deform_roi_pool,
        (input, rois, offset, mask, output_size, spatial_scale, sampling_ratio, gamma, aligned),
        {},
    )
    if traced is not None:
        return traced
    op = "modulated_deform_roi_pool"
    if mask is None:
        raise TypeError(f"{op}: mask must be an array of shape [K, 1, out_h, out_w], got None")
    return _deform_roi_pool(
        op, input, rois, offset, mask, output_size, spatial_scale, sampling_ratio, gamma, aligned
    )


def _deform_roi_pool(
    op: str,
    input: Any,
    rois: Any,
    offset: Any,
    mask: Any,
    output_size: Any,
    spatial_scale: Any,
    sampling_ratio: Any,
    gamma: Any,
    aligned: Any,
) -> Any:
    input, rois, (out_h, out_w), spatial_scale, dtype = _roi_inputs(
        op, input, rois, output_size, spatial_scale, keep_channels_last=is_cuda(input)
    )
    sampling_ratio = _checks.integer_value(op, "sampling_ratio", sampling_ratio)
    gamma = _checks.real(op, "gamma", gamma)
    aligned = deform_aligned_mode(op, aligned)
    if aligned == ALIGNED_MODES["legacy"] and sampling_ratio <= 0:
        raise ValueError(
            f"{op}: sampling_ratio must be > 0 with aligned='legacy' (the 2019 kernel's "
            f"sample_per_part, {LEGACY_SAMPLES_PER_BIN} in its configs), got {sampling_ratio}"
        )
    num_rois = rois.shape[0]
    offset = _bin_array(
        op, "offset", offset, input, (num_rois, 2, out_h, out_w), "[K, 2, out_h, out_w]"
    )
    mask = _bin_array(op, "mask", mask, input, (num_rois, 1, out_h, out_w), "[K, 1, out_h, out_w]")
    _checks.same_device(op, input=input, rois=rois, offset=offset, mask=mask)
    compute = _checks.compute_dtype(input, rois, offset, mask)
    if reads_channels_last(input):  # the CUDA kernels read it in place
        import torch

        input = input.to(getattr(torch, compute))
    else:
        input = _checks.cast(input, compute)
    rois = _checks.cast(rois, compute)
    offset, mask = _checks.cast(offset, compute), _checks.cast(mask, compute)
    if is_torch(input):
        import torch

        import det_ops._torch  # noqa: F401

        out = torch.ops.det_ops.deform_roi_pool(
            input, rois, offset, mask, spatial_scale, out_h, out_w, sampling_ratio, gamma, aligned
        )
        return out.to(dtype)
    out = deform_roi_pool_forward_kernel(
        NUMPY,
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
    )
    return out.astype(dtype, copy=False)


def _bin_array(op: str, name: str, x: Any, like: Any, expected: tuple, text: str) -> Any:
    """offset or mask: None, or a floating array with one value per bin of each RoI."""
    if x is None:
        return None
    x = _checks.array(op, name, x, like=like)
    return _checks.shape(op, name, _checks.floating(op, name, x), expected, text)


def deform_roi_pool_shape(
    input_shape: Any,
    num_rois: int,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    gamma: float,
    aligned: int,
) -> Any:
    """The kernels' description of one deformable RoI pooling call, an
    `_C.DeformRoIPoolShape`."""
    batch, channels, height, width = (int(v) for v in input_shape)
    return _C.DeformRoIPoolShape(
        batch=batch,
        channels=channels,
        height=height,
        width=width,
        num_rois=num_rois,
        pooled_h=out_h,
        pooled_w=out_w,
        sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale,
        gamma=gamma,
        aligned=int(aligned),
    )


def deform_roi_pool_forward_kernel(
    xp: Any,
    input: Any,
    rois: Any,
    offset: Any,
    mask: Any,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    gamma: float,
    aligned: int,
) -> Any:
    num_rois, channels = rois.shape[0], input.shape[1]
    output = xp.empty((num_rois, channels, out_h, out_w), dtype_name(input), like=input)
    shape = deform_roi_pool_shape(
        input.shape, num_rois, spatial_scale, out_h, out_w, sampling_ratio, gamma, aligned
    )
    ops = kernels("deform_roi_pool", input)
    # A channels-last tensor's pointer addresses [B, H, W, C] memory.
    forward = (
        ops.deform_roi_pool_forward_nhwc
        if reads_channels_last(input)
        else ops.deform_roi_pool_forward
    )
    forward(
        xp.code(input),
        xp.ptr(input),
        xp.ptr(rois),
        xp.ptr(offset),
        xp.ptr(mask),
        shape,
        xp.ptr(output),
    )
    return output


def deform_roi_pool_backward_kernel(
    xp: Any,
    grad_output: Any,
    input: Any,
    rois: Any,
    offset: Any,
    mask: Any,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    gamma: float,
    aligned: int,
    offset_grad: bool,
    mask_grad: bool,
) -> tuple[Any, Any, Any]:
    """Returns (grad_input, grad_offset, grad_mask); a gradient not asked for
    (or whose tensor is None) comes back as an empty [0] array. A channels-last input
    (CUDA) gets a channels-last grad_input."""
    dtype = dtype_name(grad_output)
    num_rois = rois.shape[0]
    channels_last = reads_channels_last(input)
    if channels_last:
        batch, channels, height, width = (int(v) for v in input.shape)
        grad_input = xp.zeros((batch, height, width, channels), dtype, like=grad_output)
    else:
        grad_input = xp.zeros(tuple(input.shape), dtype, like=grad_output)
    offset_grad = offset_grad and offset is not None
    mask_grad = mask_grad and mask is not None
    grad_offset = xp.empty(
        (num_rois, 2, out_h, out_w) if offset_grad else (0,), dtype, like=grad_output
    )
    grad_mask = xp.empty(
        (num_rois, 1, out_h, out_w) if mask_grad else (0,), dtype, like=grad_output
    )
    shape = deform_roi_pool_shape(
        input.shape, num_rois, spatial_scale, out_h, out_w, sampling_ratio, gamma, aligned
    )
    ops = kernels("deform_roi_pool", grad_output)
    backward = ops.deform_roi_pool_backward_nhwc if channels_last else ops.deform_roi_pool_backward
    backward(
        xp.code(grad_output),
        xp.ptr(grad_output),
        xp.ptr(input),
        xp.ptr(rois),
        xp.ptr(offset),
        xp.ptr(mask),
        shape,
        xp.ptr(grad_input),
        xp.ptr(grad_offset if offset_grad else None),
        xp.ptr(grad_mask if mask_grad else None),
    )
    if channels_last:
        grad_input = grad_input.permute(0, 3, 1, 2)
    return grad_input, grad_offset, grad_mask
