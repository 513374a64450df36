"""Deformable convolution written with torch gathers: slow, differentiable by autograd."""

from __future__ import annotations

import torch
from torch import Tensor


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def bilinear_zero_padded(planes: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Samples each plane at real points, reading zeros outside the map.

    Args:
        planes: Tensor[N, C, H, W].
        y, x: Tensor[N, P] sampling points, pixels.

    Returns:
        Tensor[N, C, P].
    """
    n, channels, height, width = planes.shape
    flat = planes.reshape(n, channels, height * width)
    y0, x0 = torch.floor(y), torch.floor(x)
    ly, lx = y - y0, x - x0
    inside = (y > -1) & (y < height) & (x > -1) & (x < width)
    out = planes.new_zeros((n, channels, y.shape[1]))
    corners = (
        (y0, x0, (1 - ly) * (1 - lx)),
        (y0, x0 + 1, (1 - ly) * lx),
        (y0 + 1, x0, ly * (1 - lx)),
        (y0 + 1, x0 + 1, ly * lx),
    )
    for cy, cx, weight in corners:
        valid = inside & (cy >= 0) & (cy <= height - 1) & (cx >= 0) & (cx <= width - 1)
        index = (cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)).long()
        values = flat.gather(2, index.unsqueeze(1).expand(n, channels, -1))
        out = out + torch.where(valid, weight, torch.zeros_like(weight)).unsqueeze(1) * values
    return out


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Reference of det_ops.deform_conv2d (same arguments, shapes and result)."""
    (stride_h, stride_w), (pad_h, pad_w) = _pair(stride), _pair(padding)
    dil_h, dil_w = _pair(dilation)
    batch, channels, _, _ = input.shape
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    out_h, out_w = offset.shape[2:]
    taps = kernel_h * kernel_w
    offset_groups = offset.shape[1] // (2 * taps)
    # Undeformed sampling points per tap and output position: [taps, out_h, out_w].
    i, j = torch.meshgrid(torch.arange(kernel_h), torch.arange(kernel_w), indexing="ij")
    oy, ox = torch.meshgrid(torch.arange(out_h), torch.arange(out_w), indexing="ij")
    base_y = (oy * stride_h - pad_h)[None] + (i.reshape(-1) * dil_h)[:, None, None]
    base_x = (ox * stride_w - pad_w)[None] + (j.reshape(-1) * dil_w)[:, None, None]
    offsets = offset.reshape(batch, offset_groups, taps, 2, out_h, out_w)
    y = base_y.to(offset) + offsets[:, :, :, 0]
    x = base_x.to(offset) + offsets[:, :, :, 1]
    planes = input.reshape(batch * offset_groups, channels // offset_groups, *input.shape[2:])
    samples = bilinear_zero_padded(
        planes, y.reshape(batch * offset_groups, -1), x.reshape(batch * offset_groups, -1)
    ).reshape(batch, offset_groups, channels // offset_groups, taps, out_h * out_w)
    if mask is not None:
        samples = samples * mask.reshape(batch, offset_groups, 1, taps, out_h * out_w)
    # Rows c * taps + k, grouped like the weight: [B, groups, C_in / groups * taps, P].
    groups = channels // group_channels
    columns = samples.reshape(batch, groups, group_channels * taps, out_h * out_w)
    grouped_weight = weight.reshape(groups, out_channels // groups, group_channels * taps)
    out = torch.matmul(grouped_weight, columns).reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out
