"""Deformable RoI pooling in plain torch, one RoI at a time (differentiable by autograd).

Same definition as det_ops.deform_roi_pool, written for clarity, in both geometries:
RoIAlign's (aligned=True) and the 2019 mmdetection kernel's (aligned="legacy"). The
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
    """Sampling points of one RoI: y, x of shape [out_h, out_w, grid_h, grid_w].

    count: the points averaged per bin (RoIAlign's geometry; the legacy one averages
    only the points inside the map).
    """

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
    aligned: bool | str = True,
) -> Tensor:
    """Reference of det_ops.deform_roi_pool.

    Args:
        input: Tensor[B, C, H, W]; rois: Tensor[K, 5]; offset: Tensor[K, 2, out_h, out_w] or None.

    Returns:
        Tensor[K, C, out_h, out_w].
    """
    return modulated_deform_roi_pool(
        input, rois, offset, None, output_size, spatial_scale, sampling_ratio, gamma, aligned
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
    aligned: bool | str = True,
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
    legacy = aligned == "legacy"
    points = sample_points(
        rois, offset, input.shape, (out_h, out_w), spatial_scale, sampling_ratio, gamma, aligned
    )
    outputs = []
    for k, p in enumerate(points):
        if p.batch < 0 or height == 0 or width == 0:
            outputs.append(input.new_zeros((channels, out_h, out_w)))
            continue
        if legacy:
            samples, inside = legacy_bilinear(input[p.batch], p.y, p.x)
            count = inside.sum(dim=(2, 3))  # [out_h, out_w]
            pooled = torch.where(count > 0, samples.sum(dim=(3, 4)) / count.clamp(min=1), 0)
        else:
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
    aligned: bool | str = True,
) -> list[RoIPoints]:
    """Where each RoI's shifted sampling points lie on the feature map.

    RoIAlign's aligned geometry: the RoI is scaled and moved by -0.5 pixel, cut
    into out_h x out_w bins with grid_h x grid_w points each (at the centres of
    a regular sub-grid); bin (ph, pw) is then shifted by
    gamma * (roi_h * offset[k, 1, ph, pw], roi_w * offset[k, 0, ph, pw]).
    aligned="legacy": see legacy_points.
    """
    if aligned == "legacy":
        return legacy_points(
            rois, offset, input_shape, output_size, spatial_scale, sampling_ratio, gamma
        )
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


def legacy_points(
    rois: Tensor,
    offset: Tensor | None,
    input_shape: tuple[int, ...],
    output_size: tuple[int, int],
    spatial_scale: float,
    samples: int,
    gamma: float,
) -> list[RoIPoints]:
    """The 2019 kernel's points (mmdet v0.6 deform_pool_cuda_kernel.cu, one group and part).

    The RoI's corners are rounded (halves away from zero) to whole image pixels; it spans
    [x1 * scale - 0.5, (x2 + 1) * scale - 0.5] on the map, at least 0.1 wide, cut into
    out_h x out_w bins. Bin (ph, pw) starts at its corner moved by
    (offset[k, :, ph, pw] * gamma) * (roi_w, roi_h); its samples x samples points sit at
    that start plus i * bin / samples (i = 0 .. samples - 1).
    """
    out_h, out_w = output_size
    batch = input_shape[0]
    result = []
    for k in range(rois.shape[0]):
        roi = rois[k].detach()
        corners = _round_half_away(roi[1:])
        start_x = corners[0] * spatial_scale - 0.5
        start_y = corners[1] * spatial_scale - 0.5
        end_x = (corners[2] + 1) * spatial_scale - 0.5
        end_y = (corners[3] + 1) * spatial_scale - 0.5
        roi_w = torch.clamp(end_x - start_x, min=0.1)
        roi_h = torch.clamp(end_y - start_y, min=0.1)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        finite = bool(torch.isfinite(torch.stack([start_x, start_y, end_x, end_y])).all())
        b = float(roi[0])
        image = int(b) if finite and 0 <= b < batch else -1
        n = samples if image >= 0 else 0
        ph = torch.arange(out_h, dtype=roi.dtype)
        pw = torch.arange(out_w, dtype=roi.dtype)
        i = torch.arange(n, dtype=roi.dtype)
        y0 = (ph * bin_h + start_y)[:, None].expand(out_h, out_w)  # each bin's start
        x0 = (pw * bin_w + start_x)[None, :].expand(out_h, out_w)
        if offset is not None:
            y0 = y0 + (offset[k, 1] * gamma) * roi_h
            x0 = x0 + (offset[k, 0] * gamma) * roi_w
        y = y0[:, :, None, None] + (i * (bin_h / n))[None, None, :, None]
        x = x0[:, :, None, None] + (i * (bin_w / n))[None, None, None, :]
        y, x = y.expand(out_h, out_w, n, n), x.expand(out_h, out_w, n, n)
        result.append(RoIPoints(image, y, x, n * n))
    return result


def _round_half_away(v: Tensor) -> Tensor:
    """C's round(): halves away from zero (torch.round rounds them to even)."""
    trunc = torch.trunc(v)
    return torch.where((v - trunc).abs() == 0.5, trunc + torch.sign(v), torch.round(v))


def legacy_bilinear(feature: Tensor, y: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """The 2019 kernel's reading of feature [C, H, W] at points y, x (same shape).

    A point more than half a pixel outside the map (or not finite) is skipped; the others
    are clamped to [0, size - 1] and interpolated between floor and ceil of each
    coordinate (so the derivative is zero where clamped or on a whole pixel).

    Returns:
        (Tensor[C, *y.shape] values, 0 where skipped; bool Tensor[*y.shape] inside).
    """
    height, width = feature.shape[-2:]
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    y = torch.clamp(torch.where(inside, y, 0), 0, height - 1)
    x = torch.clamp(torch.where(inside, x, 0), 0, width - 1)
    y0, x0 = torch.floor(y.detach()), torch.floor(x.detach())
    y1, x1 = torch.ceil(y.detach()).long(), torch.ceil(x.detach()).long()
    dy, dx = y - y0, x - x0
    y0, x0 = y0.long(), x0.long()
    value = (
        (1 - dx) * (1 - dy) * feature[:, y0, x0]
        + (1 - dx) * dy * feature[:, y1, x0]
        + dx * (1 - dy) * feature[:, y0, x1]
        + dx * dy * feature[:, y1, x1]
    )
    return torch.where(inside, value, 0), inside


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
