"""Deformable RoI pooling in plain torch, one RoI at a time (differentiable by autograd).

Same definition as det_ops.deform_roi_pool, written for clarity. The
arithmetic follows the kernels' order of operations so that, in float32,
sampling points land on the same side of pixel boundaries as the kernels'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Adaptive sampling takes at most this many points per bin and axis (as the kernels).
MAX_SAMPLING_GRID = 1024


@dataclass
class RoIPoints:
    """Sampling points of one RoI: y, x of shape [out_h, out_w, grid_h, grid_w]."""

    batch: int
    y: Tensor
    x: Tensor
    count: int


def deform_roi_pool(
    input: Tensor,
    rois: Tensor,
    offset: Tensor | None,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    gamma: float = 0.1,
) -> Tensor:
    """Reference of det_ops.deform_roi_pool.

    Args:
        input: Tensor[B, C, H, W]; rois: Tensor[K, 5]; offset: Tensor[K, 2, out_h, out_w] or None.

    Returns:
        Tensor[K, C, out_h, out_w].
    """
    return modulated_deform_roi_pool(
        input, rois, offset, None, output_size, spatial_scale, sampling_ratio, gamma
    )


def modulated_deform_roi_pool(
    input: Tensor,
    rois: Tensor,
    offset: Tensor | None,
    mask: Tensor | None,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    gamma: float = 0.1,
) -> Tensor:
    """Reference of det_ops.modulated_deform_roi_pool (mask None: no mask).

    Args:
        input: Tensor[B, C, H, W]; rois: Tensor[K, 5]; offset: Tensor[K, 2, out_h, out_w]
            or None; mask: Tensor[K, 1, out_h, out_w] or None.

    Returns:
        Tensor[K, C, out_h, out_w].
    """
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    _, channels, height, width = input.shape
    points = sample_points(
        rois, offset, input.shape, (out_h, out_w), spatial_scale, sampling_ratio, gamma
    )
    outputs = []
    for k, p in enumerate(points):
        if p.batch < 0 or height == 0 or width == 0:
            outputs.append(input.new_zeros((channels, out_h, out_w)))
            continue
        samples = clamped_bilinear(input[p.batch], p.y, p.x)  # [C, out_h, out_w, gh, gw]
        pooled = samples.sum(dim=(3, 4)) / p.count
        if mask is not None:
            pooled = pooled * mask[k, 0]
        outputs.append(pooled)
    if not outputs:
        return input.new_zeros((0, channels, out_h, out_w))
    return torch.stack(outputs)


def sample_points(
    rois: Tensor,
    offset: Tensor | None,
    input_shape: tuple[int, ...],
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    gamma: float,
) -> list[RoIPoints]:
    """Where each RoI's shifted sampling points lie on the feature map.

    RoIAlign's aligned geometry: the RoI is scaled and moved by -0.5 pixel, cut
    into out_h x out_w bins with grid_h x grid_w points each (at the centres of
    a regular sub-grid); bin (ph, pw) is then shifted by
    gamma * (roi_h * offset[k, 1, ph, pw], roi_w * offset[k, 0, ph, pw]).
    """
    out_h, out_w = output_size
    batch = input_shape[0]
    result = []
    for k in range(rois.shape[0]):
        roi = rois[k].detach()
        start_x = roi[1] * spatial_scale - 0.5
        start_y = roi[2] * spatial_scale - 0.5
        end_x = roi[3] * spatial_scale - 0.5
        end_y = roi[4] * spatial_scale - 0.5
        roi_w, roi_h = end_x - start_x, end_y - start_y
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        finite = bool(torch.isfinite(torch.stack([start_x, start_y, end_x, end_y])).all())
        b = float(roi[0])
        # An unusable RoI (bad batch index, non-finite corner) pools to zeros.
        image = int(b) if finite and 0 <= b < batch else -1
        grid_h = _grid(roi_h, out_h, sampling_ratio) if image >= 0 else 0
        grid_w = _grid(roi_w, out_w, sampling_ratio) if image >= 0 else 0
        ph = torch.arange(out_h, dtype=roi.dtype)
        pw = torch.arange(out_w, dtype=roi.dtype)
        iy = torch.arange(grid_h, dtype=roi.dtype)
        ix = torch.arange(grid_w, dtype=roi.dtype)
        y = (start_y + ph[:, None] * bin_h) + (iy[None, :] + 0.5) * bin_h / grid_h  # [out_h, gh]
        x = (start_x + pw[:, None] * bin_w) + (ix[None, :] + 0.5) * bin_w / grid_w  # [out_w, gw]
        y = y[:, None, :, None].expand(out_h, out_w, grid_h, grid_w)
        x = x[None, :, None, :].expand(out_h, out_w, grid_h, grid_w)
        if offset is not None:
            dx = (gamma * roi_w) * offset[k, 0]
            dy = (gamma * roi_h) * offset[k, 1]
            y = y + dy[:, :, None, None]
            x = x + dx[:, :, None, None]
        result.append(RoIPoints(image, y, x, max(grid_h * grid_w, 1)))
    return result


def _grid(extent: Tensor, pooled: int, sampling_ratio: int) -> int:
    if sampling_ratio > 0:
        return sampling_ratio
    points = float(torch.ceil(extent / pooled))
    if not points > 0:
        return 0
    return int(min(points, MAX_SAMPLING_GRID))


def clamped_bilinear(feature: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """RoIAlign's bilinear interpolation of feature [C, H, W] at points y, x (same shape).

    A point more than one pixel outside the map reads 0; one in the outer
    half-pixel band reads the border (and does not move with the coordinate).

    Returns:
        Tensor[C, *y.shape].
    """
    height, width = feature.shape[-2:]
    inside = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)  # False for NaN
    y_low, y_high, ly = _clamped_axis(torch.where(inside, y, 0), height)
    x_low, x_high, lx = _clamped_axis(torch.where(inside, x, 0), width)
    hy, hx = 1 - ly, 1 - lx
    value = (
        hy * hx * feature[:, y_low, x_low]
        + hy * lx * feature[:, y_low, x_high]
        + ly * hx * feature[:, y_high, x_low]
        + ly * lx * feature[:, y_high, x_high]
    )
    return torch.where(inside, value, 0)


def _clamped_axis(v: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Low and high neighbour indices and the fractional distance from the low one."""
    v = torch.where(v <= 0, 0, v)
    low = torch.floor(v.detach()).long()
    at_end = low >= size - 1
    low = torch.where(at_end, size - 1, low)
    high = torch.where(at_end, size - 1, low + 1)
    v = torch.where(at_end, low.to(v.dtype), v)
    return low, high, v - low.to(v.dtype)
