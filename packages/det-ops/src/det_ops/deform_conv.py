"""Deformable convolution (DCN v1, Dai et al. 2017; modulated DCN v2, Zhu et al. 2019)."""

from __future__ import annotations

from typing import Any

from det_ops import _C, _checks
from det_ops._arrays import NUMPY, dtype_name, is_torch, kernels
from det_ops._fx import traced_call

# The kernels index a feature-map plane with int32.
MAX_PLANE = 2**31 - 1


def deform_conv2d(
    input: Any,
    offset: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = (1, 1),
    padding: int | tuple[int, int] = (0, 0),
    dilation: int | tuple[int, int] = (1, 1),
    mask: Any = None,
) -> Any:
    """Convolution whose kernel taps sample the input at learned, per-position offsets.

    Same definition and offset layout as ``torchvision.ops.deform_conv2d``. Output
    position (oy, ox) and tap (i, j) read the input at
    ``y = oy * stride_h - pad_h + i * dilation_h + dy``,
    ``x = ox * stride_w - pad_w + j * dilation_w + dx`` by bilinear interpolation
    (zero outside the map), times the mask value when a mask is given (DCN v2).

    Args:
        input: Tensor[B, C_in, H, W].
        offset: Tensor[B, 2 * G * kh * kw, H_out, W_out]; for offset group g and
            tap k = i * kw + j, channel g * 2 * kh * kw + 2 * k is dy and the next dx,
            in input pixels. The G offset groups split the input channels evenly.
        weight: Tensor[C_out, C_in / groups, kh, kw]; groups = C_in / weight.shape[1].
        bias: Tensor[C_out] or None.
        stride, padding, dilation: an int or a pair (h, w).
        mask: Tensor[B, G * kh * kw, H_out, W_out] modulation (DCN v2), or None (v1).

    Returns:
        Tensor[B, C_out, H_out, W_out] in input's dtype, with
        H_out = (H + 2 * pad_h - dilation_h * (kh - 1) - 1) // stride_h + 1 (W_out alike).
        Torch tensors are differentiable in input, offset, weight, bias and mask;
        float16 and bfloat16 are computed in float32, under torch.autocast too (the
        matrix product of weight and sampled columns included), as torchvision does.
    """
    traced = traced_call(
        deform_conv2d,
        (input, offset, weight, bias, stride, padding, dilation),
        {"mask": mask},
    )
    if traced is not None:
        return traced
    op = "deform_conv2d"
    input = _checks.feature_map(op, "input", _checks.array(op, "input", input))
    offset = _checks.array(op, "offset", offset, like=input)
    weight = _checks.array(op, "weight", weight, like=input)
    bias = None if bias is None else _checks.array(op, "bias", bias, like=input)
    mask = None if mask is None else _checks.array(op, "mask", mask, like=input)
    _checks.same_device(op, input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    _checks.on_cpu_or_cuda(op, input)
    params, groups = _deform_params(
        op, input, offset, weight, bias, mask, stride, padding, dilation
    )
    dtype = input.dtype
    compute = _checks.compute_dtype(input, offset, weight, bias, mask)
    input, offset, weight, bias, mask = (
        _checks.cast(x, compute) for x in (input, offset, weight, bias, mask)
    )
    if is_torch(input):
        import torch

        import det_ops._torch  # noqa: F401  (registers torch.ops.det_ops)

        columns = torch.ops.det_ops.deform_im2col(input, offset, mask, *params)
        # Autocast would run the product in its low precision; the sampling already
        # runs in float32, and the 2019 kernels kept the product there too.
        with torch.autocast(input.device.type, enabled=False):
            out = convolve_columns(columns, weight, bias, groups, offset.shape)
        return out.to(dtype)
    columns = deform_im2col_kernel(NUMPY, input, offset, mask, params)
    out = convolve_columns(columns, weight, bias, groups, offset.shape)
    return out.astype(dtype, copy=False)


def _deform_params(
    op: str,
    input: Any,
    offset: Any,
    weight: Any,
    bias: Any,
    mask: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
) -> tuple[tuple[int, ...], int]:
    """Checks the shapes against each other; returns the kernel parameters and groups."""
    stride_h, stride_w = _checks.pair(op, "stride", stride)
    pad_h, pad_w = _checks.pair(op, "padding", padding, minimum=0)
    dil_h, dil_w = _checks.pair(op, "dilation", dilation)
    _checks.shape(
        op,
        "offset",
        _checks.floating(op, "offset", offset),
        (None, None, None, None),
        "[B, 2 * G * kh * kw, H_out, W_out]",
    )
    _checks.shape(
        op,
        "weight",
        _checks.floating(op, "weight", weight),
        (None, None, None, None),
        "[C_out, C_in / groups, kh, kw]",
    )
    batch, channels, height, width = (int(v) for v in input.shape)
    out_channels, group_channels, kernel_h, kernel_w = (int(v) for v in weight.shape)
    if group_channels == 0 or kernel_h == 0 or kernel_w == 0:
        raise ValueError(
            f"{op}: weight must have shape [C_out, C_in / groups, kh, kw] with non-zero "
            f"C_in / groups, kh and kw, got {list(weight.shape)}"
        )
    if channels % group_channels != 0:
        raise ValueError(
            f"{op}: input channels ({channels}) must be a multiple of weight.shape[1] "
            f"({group_channels}), the input channels of one group"
        )
    groups = channels // group_channels
    if out_channels % groups != 0:
        raise ValueError(
            f"{op}: weight.shape[0] ({out_channels}) must be a multiple of the groups "
            f"({groups} = input channels {channels} / weight.shape[1] {group_channels})"
        )
    if height * width > MAX_PLANE:
        raise ValueError(
            f"{op}: input planes must have at most {MAX_PLANE} pixels, got {height}x{width}"
        )
    out_h = (height + 2 * pad_h - dil_h * (kernel_h - 1) - 1) // stride_h + 1
    out_w = (width + 2 * pad_w - dil_w * (kernel_w - 1) - 1) // stride_w + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"{op}: input of size {height}x{width} is too small for a {kernel_h}x{kernel_w} "
            f"kernel with padding {(pad_h, pad_w)} and dilation {(dil_h, dil_w)}"
        )
    taps = kernel_h * kernel_w
    offset_channels = int(offset.shape[1])
    offset_groups = offset_channels // (2 * taps)
    if (
        tuple(offset.shape) != (batch, offset_channels, out_h, out_w)
        or offset_groups == 0
        or offset_channels % (2 * taps) != 0
    ):
        raise ValueError(
            f"{op}: offset must have shape [B, 2 * G * kh * kw, H_out, W_out] = "
            f"[{batch}, 2 * G * {taps}, {out_h}, {out_w}] for some G >= 1, "
            f"got {list(offset.shape)}"
        )
    if channels % offset_groups != 0:
        raise ValueError(
            f"{op}: input channels ({channels}) must be a multiple of the offset groups "
            f"({offset_groups} = offset.shape[1] {offset_channels} / (2 * {taps}))"
        )
    if mask is not None:
        expected = (batch, offset_groups * taps, out_h, out_w)
        _checks.shape(
            op,
            "mask",
            _checks.floating(op, "mask", mask),
            expected,
            f"[B, G * kh * kw, H_out, W_out] = {list(expected)}",
        )
    if bias is not None:
        _checks.shape(
            op,
            "bias",
            _checks.floating(op, "bias", bias),
            (out_channels,),
            f"[C_out] = [{out_channels}]",
        )
    params = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    return params, groups


def convolve_columns(columns: Any, weight: Any, bias: Any, groups: int, offset_shape: Any) -> Any:
    """The convolution as a (grouped) matrix product of weight and sampled columns.

    Args:
        columns: Tensor[B, C_in * kh * kw, H_out * W_out] from deform_im2col.
        weight: Tensor[C_out, C_in / groups, kh, kw]; bias: Tensor[C_out] or None.
        offset_shape: (B, _, H_out, W_out).

    Returns:
        Tensor[B, C_out, H_out, W_out]; numpy or torch like the inputs.
    """
    batch, _, out_h, out_w = (int(v) for v in offset_shape)
    out_channels, group_channels, kernel_h, kernel_w = (int(v) for v in weight.shape)
    rows = group_channels * kernel_h * kernel_w
    # Rows of columns are c * taps + k, so each group's rows are contiguous and
    # ordered like the flattened weight of that group.
    grouped_weight = weight.reshape(groups, out_channels // groups, rows)
    grouped_columns = columns.reshape(batch, groups, rows, out_h * out_w)
    out = (grouped_weight @ grouped_columns).reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, out_channels, 1, 1)
    return out


def deform_shape(input_shape: Any, offset_shape: Any, params: Any) -> Any:
    """The kernels' description of one deformable convolution, an `_C.DeformConvGeometry`.

    Args:
        input_shape: (B, C_in, H, W).
        offset_shape: (B, 2 * G * kh * kw, H_out, W_out).
        params: (kh, kw, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w),
            as _deform_params returns them.
    """
    batch, channels, height, width = (int(v) for v in input_shape)
    kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w = (int(p) for p in params)
    _, offset_channels, out_h, out_w = (int(v) for v in offset_shape)
    return _C.DeformConvGeometry(
        batch=batch,
        channels=channels,
        height=height,
        width=width,
        offset_groups=offset_channels // (2 * kernel_h * kernel_w),
        kernel_h=kernel_h,
        kernel_w=kernel_w,
        stride_h=stride_h,
        stride_w=stride_w,
        pad_h=pad_h,
        pad_w=pad_w,
        dilation_h=dil_h,
        dilation_w=dil_w,
        out_h=out_h,
        out_w=out_w,
    )


def deform_im2col_kernel(xp: Any, input: Any, offset: Any, mask: Any, params: Any) -> Any:
    """Columns [B, C_in * kh * kw, H_out * W_out] of masked bilinear samples."""
    shape = deform_shape(input.shape, offset.shape, params)
    taps = shape.kernel_h * shape.kernel_w
    columns = xp.empty(
        (shape.batch, shape.channels * taps, shape.out_h * shape.out_w),
        dtype_name(input),
        like=input,
    )
    kernels("deform_conv2d", input).deform_im2col(
        xp.code(input), xp.ptr(input), xp.ptr(offset), xp.ptr(mask), shape, xp.ptr(columns)
    )
    return columns


def deform_col2im_kernel(
    xp: Any, grad_columns: Any, offset: Any, mask: Any, input_shape: Any, params: Any
) -> Any:
    """Gradient of deform_im2col's columns with respect to the input, Tensor[B, C_in, H, W]."""
    shape = deform_shape(input_shape, offset.shape, params)
    grad_input = xp.empty(
        (shape.batch, shape.channels, shape.height, shape.width),
        dtype_name(grad_columns),
        like=grad_columns,
    )
    kernels("deform_conv2d", grad_columns).deform_col2im(
        xp.code(grad_columns),
        xp.ptr(grad_columns),
        xp.ptr(offset),
        xp.ptr(mask),
        shape,
        xp.ptr(grad_input),
    )
    return grad_input


def deform_col2im_coord_kernel(
    xp: Any, grad_columns: Any, input: Any, offset: Any, mask: Any, params: Any
) -> tuple[Any, Any]:
    """Gradients of deform_im2col's columns with respect to offset and mask.

    Returns:
        (grad_offset shaped like offset, grad_mask shaped like mask; without a
        mask, Tensor[B, 0, H_out, W_out]).
    """
    shape = deform_shape(input.shape, offset.shape, params)
    dtype = dtype_name(grad_columns)
    grad_offset = xp.empty(tuple(offset.shape), dtype, like=grad_columns)
    mask_shape = (shape.batch, 0 if mask is None else mask.shape[1], shape.out_h, shape.out_w)
    grad_mask = xp.empty(mask_shape, dtype, like=grad_columns)
    kernels("deform_conv2d", grad_columns).deform_col2im_coord(
        xp.code(grad_columns),
        xp.ptr(grad_columns),
        xp.ptr(input),
        xp.ptr(offset),
        xp.ptr(mask),
        shape,
        xp.ptr(grad_offset),
        0 if mask is None else xp.ptr(grad_mask),
    )
    return grad_offset, grad_mask
