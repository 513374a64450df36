"""RoIAlign (Mask R-CNN): average of bilinear samples in each bin of a RoI."""

from __future__ import annotations

from typing import Any

from det_ops import _C, _checks
from det_ops._arrays import (
    HALF_DTYPES,
    NUMPY,
    dtype_name,
    input_gradient,
    input_gradient_buffer,
    is_cuda,
    is_torch,
    kernels,
)
from det_ops._fx import traced_call

# RoI coordinate modes; the kernels' RoIAlignMode (csrc/common/roi_geometry.h).
ALIGNED_MODES = {False: 0, True: 1, "legacy": 2}


def aligned_mode(op: str, aligned: Any) -> int:
    """The kernels' integer mode of an `aligned` argument: False, True or "legacy"."""
    if isinstance(aligned, str):
        if aligned != "legacy":
            raise ValueError(
                f"{op}: aligned must be True, False or 'legacy' (the 2019 mmdetection RoIAlign), "
                f"got {aligned!r}"
            )
        return ALIGNED_MODES["legacy"]
    return ALIGNED_MODES[_checks.boolean(op, "aligned", aligned)]


def roi_align(
    input: Any,
    boxes: Any,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool | str = False,
) -> Any:
    """Pools each RoI of a feature map into a fixed grid of averaged bilinear samples.

    Same definition, arguments and defaults as ``torchvision.ops.roi_align``.

    Args:
        input: Tensor[B, C, H, W] feature map.
        boxes: the RoIs, Tensor[K, 5] (batch_index, x1, y1, x2, y2) in image pixels, or a
            list of Tensor[L_i, 4] boxes, one per image.
        output_size: (out_h, out_w) or an int for both.
        spatial_scale: feature-map pixels per image pixel (1/16 for stride 16).
        sampling_ratio: sampling points per bin and axis; <= 0: adaptive,
            ceil(roi size / output size).
        aligned: False (the default, as torchvision): no shift, RoIs at least 1x1 on the
            map; True: shift the RoI by half a pixel so that pixel centres are at +0.5;
            "legacy": the 2019 mmdetection kernel: the RoI ends at (x2 + 1, y2 + 1) before
            scaling and its size is clamped at 0, not 1 (widths x2 - x1 + 1).

    Returns:
        Tensor[K, C, out_h, out_w], input's dtype. RoIs with a non-finite
        coordinate pool to zeros.
    """
    traced = traced_call(
        roi_align, (input, boxes, output_size, spatial_scale, sampling_ratio, aligned), {}
    )
    if traced is not None:
        return traced
    op = "roi_align"
    input, rois, (out_h, out_w), spatial_scale, dtype = _roi_inputs(
        op,
        input,
        boxes,
        output_size,
        spatial_scale,
        keep_channels_last=True,
        keep_half=True,
        rois_name="boxes",
    )
    sampling_ratio = _checks.integer_value(op, "sampling_ratio", sampling_ratio)
    aligned = aligned_mode(op, aligned)
    if is_torch(input):
        import torch

        import det_ops._torch  # noqa: F401

        out = torch.ops.det_ops.roi_align(
            input, rois, spatial_scale, out_h, out_w, sampling_ratio, aligned
        )
        return out.to(dtype)
    out = roi_align_forward_kernel(
        NUMPY, input, rois, spatial_scale, out_h, out_w, sampling_ratio, aligned
    )
    return out.astype(dtype, copy=False)


def _roi_inputs(
    op: str,
    input: Any,
    rois: Any,
    output_size: Any,
    spatial_scale: Any,
    keep_channels_last: bool = False,
    keep_half: bool = False,
    rois_name: str = "rois",
) -> tuple[Any, Any, tuple[int, int], float, Any]:
    """Checks shared by the RoI ops; returns contiguous inputs in the compute dtype.

    With keep_channels_last, a channels-last tensor stays channels-last (the kernel that
    reads it needs no transposed copy). With keep_half, a float16 or bfloat16 map on CUDA
    stays in its dtype (the CUDA kernels read it natively; the RoIs are float32).
    rois_name names the RoIs in messages.
    """
    input = _checks.feature_map(op, "input", _checks.array(op, "input", input))
    rois = _checks.rois(op, rois, like=input, name=rois_name)
    _checks.same_device(op, input=input, **{rois_name: rois})
    _checks.on_cpu_or_cuda(op, input)
    size = _checks.pair(op, "output_size", output_size)
    spatial_scale = _checks.real(op, "spatial_scale", spatial_scale)
    if spatial_scale <= 0:
        raise ValueError(f"{op}: spatial_scale must be > 0, got {spatial_scale}")
    _checks.batch_indices(op, rois, input.shape[0], name=rois_name)
    dtype = input.dtype
    compute = _checks.compute_dtype(input, rois)
    input = map_for_kernels(input, compute, keep_channels_last, keep_half)
    return input, _checks.cast(rois, compute), size, spatial_scale, dtype


def map_for_kernels(input: Any, compute: str, keep_channels_last: bool, keep_half: bool) -> Any:
    """A feature map in the dtype and layout the kernels read: contiguous in `compute`;
    with keep_channels_last a channels-last tensor stays channels-last; with keep_half a
    float16 or bfloat16 map on CUDA stays in its dtype (when compute is float32)."""
    read_as = compute
    if keep_half and is_cuda(input) and dtype_name(input) in HALF_DTYPES and compute == "float32":
        read_as = dtype_name(input)
    if keep_channels_last and is_channels_last(input):
        import torch

        return input.to(getattr(torch, read_as)).contiguous(memory_format=torch.channels_last)
    return _checks.cast(input, read_as)


def is_channels_last(x: Any) -> bool:
    """Whether x is a torch Tensor[B, C, H, W] stored channels-last and not also NCHW; the
    CPU and CUDA kernels of RoIAlign read such a map in place."""
    if not is_torch(x) or x.dim() != 4:
        return False
    import torch

    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def roi_align_shape(
    input_shape: Any,
    num_rois: int,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> Any:
    """The kernels' description of one RoIAlign call, an `_C.RoIAlignShape`."""
    batch, channels, height, width = (int(v) for v in input_shape)
    return _C.RoIAlignShape(
        batch=batch,
        channels=channels,
        height=height,
        width=width,
        num_rois=num_rois,
        pooled_h=out_h,
        pooled_w=out_w,
        sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale,
        aligned=int(aligned),
    )


def roi_align_forward_kernel(
    xp: Any,
    input: Any,
    rois: Any,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
) -> Any:
    num_rois, channels = rois.shape[0], input.shape[1]
    output = xp.empty((num_rois, channels, out_h, out_w), dtype_name(input), like=input)
    shape = roi_align_shape(
        input.shape, num_rois, spatial_scale, out_h, out_w, sampling_ratio, aligned
    )
    ops = kernels("roi_align", input)
    # A channels-last tensor's pointer addresses [B, H, W, C] memory.
    forward = ops.roi_align_forward_nhwc if is_channels_last(input) else ops.roi_align_forward
    forward(xp.code(input), xp.ptr(input), xp.ptr(rois), shape, xp.ptr(output))
    return output


def roi_align_backward_kernel(
    xp: Any,
    grad_output: Any,
    rois: Any,
    input_shape: Any,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: int,
    channels_last: bool = False,
) -> Any:
    """The gradient of the input, in grad_output's dtype; with channels_last (torch tensors
    only) it is computed and returned channels-last, the layout of the forward's input. A
    float16 or bfloat16 gradient (CUDA) is summed in a float32 buffer, rounded once."""
    shape = roi_align_shape(
        input_shape, rois.shape[0], spatial_scale, out_h, out_w, sampling_ratio, aligned
    )
    ops = kernels("roi_align", grad_output)
    backward = ops.roi_align_backward_nhwc if channels_last else ops.roi_align_backward
    grad_input = input_gradient_buffer(xp, input_shape, grad_output, channels_last)
    backward(xp.code(grad_output), xp.ptr(grad_output), xp.ptr(rois), shape, xp.ptr(grad_input))
    return input_gradient(grad_input, grad_output, channels_last)
