"""Reference RoIAlign and RoIPool in plain torch (loops over RoIs and bins)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def clamped_bilinear(plane: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """RoIAlign's bilinear sampling of plane [C, H, W] at points y, x [P] -> [C, P].

    Points more than a pixel outside give 0; points in the outer band are
    clamped to the border. Differentiable with respect to plane, y and x.
    """
    height, width = plane.shape[-2:]
    inside = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low = y.detach().floor().long().clamp(max=height - 1)
    x_low = x.detach().floor().long().clamp(max=width - 1)
    y = torch.where(y_low >= height - 1, y_low.to(y.dtype), y)
    x = torch.where(x_low >= width - 1, x_low.to(x.dtype), x)
    y_high = (y_low + 1).clamp(max=height - 1)
    x_high = (x_low + 1).clamp(max=width - 1)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    value = (
        hy * hx * plane[:, y_low, x_low]
        + hy * lx * plane[:, y_low, x_high]
        + ly * hx * plane[:, y_high, x_low]
        + ly * lx * plane[:, y_high, x_high]
    )
    return value * inside


def aligned_grid(
    roi: Tensor,
    spatial_scale: float,
    out_h: int,
    out_w: int,
    sampling_ratio: int,
    aligned: bool | str,
) -> tuple[Tensor, Tensor, int, int]:
    """Sampling points of one RoI: y [out_h, grid_h], x [out_w, grid_w] and the grid sizes.

    aligned: True (half-pixel shift), False (torchvision's: at least 1x1) or "legacy" (the
    2019 kernels: the RoI ends at x2 + 1, y2 + 1 and its size is clamped at 0).
    """
    legacy = aligned == "legacy"
    offset = 0.5 if aligned is True else 0.0
    end = roi[3:] + 1 if legacy else roi[3:]
    x1, y1 = (roi[1:3] * spatial_scale - offset).unbind()
    x2, y2 = (end * spatial_scale - offset).unbind()
    roi_w, roi_h = x2 - x1, y2 - y1
    if aligned is False:
        roi_w, roi_h = roi_w.clamp(min=1), roi_h.clamp(min=1)
    elif legacy:
        roi_w, roi_h = roi_w.clamp(min=0), roi_h.clamp(min=0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    grid_h = sampling_ratio if sampling_ratio > 0 else max(math.ceil(float(roi_h) / out_h), 0)
    grid_w = sampling_ratio if sampling_ratio > 0 else max(math.ceil(float(roi_w) / out_w), 0)
    iy = torch.arange(grid_h, dtype=roi.dtype)
    ix = torch.arange(grid_w, dtype=roi.dtype)
    ph = torch.arange(out_h, dtype=roi.dtype)
    pw = torch.arange(out_w, dtype=roi.dtype)
    ys = y1 + ph[:, None] * bin_h + (iy[None, :] + 0.5) * bin_h / max(grid_h, 1)
    xs = x1 + pw[:, None] * bin_w + (ix[None, :] + 0.5) * bin_w / max(grid_w, 1)
    return ys, xs, grid_h, grid_w


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool | str = False,
) -> Tensor:
    """RoIAlign of input [B, C, H, W] over rois [K, 5] -> [K, C, out_h, out_w]."""
    out_h, out_w = output_size
    outputs = []
    for roi in rois:
        ys, xs, grid_h, grid_w = aligned_grid(
            roi, spatial_scale, out_h, out_w, sampling_ratio, aligned
        )
        # every (bin row, sample row) with every (bin column, sample column)
        y = ys.reshape(-1, 1).expand(-1, xs.numel()).reshape(-1)
        x = xs.reshape(1, -1).expand(ys.numel(), -1).reshape(-1)
        values = clamped_bilinear(input[int(roi[0])], y, x)
        values = values.reshape(-1, out_h, grid_h, out_w, grid_w)
        outputs.append(values.sum(dim=(2, 4)) / max(grid_h * grid_w, 1))
    if not outputs:
        return input.new_zeros((0, input.shape[1], out_h, out_w))
    return torch.stack(outputs)


def _round_half_away(value: Tensor) -> int:
    """Rounds half away from zero, as C's round() does (torch.round rounds half to even)."""
    return int(torch.sign(value) * torch.floor(value.abs() + 0.5))


def roi_pool(
    input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float = 1.0
) -> Tensor:
    """RoIPool of input [B, C, H, W] over rois [K, 5] -> [K, C, out_h, out_w]; empty bins are 0.

    Bin edges are computed in the input's dtype, as the kernels do: in float32 a
    bin edge may land just past an integer and take one more row.
    """
    out_h, out_w = output_size
    height, width = input.shape[-2:]
    output = input.new_zeros((len(rois), input.shape[1], out_h, out_w))

    def edges(start: int, end: int, pooled: int, size: int) -> list[tuple[int, int]]:
        extent = max(end - start + 1, 1)
        bin_size = torch.tensor(extent, dtype=input.dtype) / pooled
        cuts = []
        for p in range(pooled):
            low = int(torch.floor(p * bin_size)) + start
            high = int(torch.ceil((p + 1) * bin_size)) + start
            cuts.append((min(max(low, 0), size), min(max(high, 0), size)))
        return cuts

    for k, roi in enumerate(rois):
        x1, y1, x2, y2 = (_round_half_away(v * spatial_scale) for v in roi[1:])
        for ph, (top, bottom) in enumerate(edges(y1, y2, out_h, height)):
            for pw, (left, right) in enumerate(edges(x1, x2, out_w, width)):
                if bottom > top and right > left:
                    region = input[int(roi[0]), :, top:bottom, left:right]
                    output[k, :, ph, pw] = region.amax(dim=(1, 2))
    return output


def multi_level_roi_align(
    features: list[Tensor],
    rois: Tensor,
    levels: Tensor,
    output_size: tuple[int, int],
    spatial_scales: list[float],
    sampling_ratio: int = -1,
    aligned: bool | str = False,
) -> Tensor:
    """RoIAlign of each RoI on features[levels[k]] -> [K, C, out_h, out_w]; RoIs of no level
    pool to zeros."""
    out_h, out_w = output_size
    output = features[0].new_zeros((len(rois), features[0].shape[1], out_h, out_w))
    for level, (feature, scale) in enumerate(zip(features, spatial_scales, strict=True)):
        members = torch.nonzero(levels == level).flatten()
        if len(members):
            pooled = roi_align(feature, rois[members], output_size, scale, sampling_ratio, aligned)
            output = output.index_put((members,), pooled)
    return output
