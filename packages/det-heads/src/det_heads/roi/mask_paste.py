"""Pasting each box's mask probabilities back into the image as a binary mask."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

PASTE_STYLES = ("det", "mmdet", "torchvision")


# Bytes of intermediates one chunk of boxes may take in the batched paste.
_PASTE_CHUNK_BYTES = 64 * 2**20


def paste_masks(
    masks: Tensor,
    boxes: Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    *,
    style: str = "det",
) -> Tensor:
    """Binary masks in the image from per-box probability maps.

    "det": image pixel (x, y) of box b takes the bilinear sample (zero outside the map) of
    masks[b] at the pixel centre mapped into the box, i.e. map coordinate
    ((x + 0.5 - x1) / (x2 - x1)) * M.

    "mmdet" (mmdet/models/mask_heads/fcn_mask_head.py get_seg_masks): the box truncated to
    integers, the map resized bilinearly (half-pixel centres, no antialiasing) to
    (x2 - x1 + 1) x (y2 - y1 + 1) and written at (x1, y1).

    "torchvision" (torchvision/models/detection/roi_heads.py paste_masks_in_image): the map
    padded by one zero pixel per side and the box grown by (M + 2) / M about its centre,
    then as "mmdet".

    Masks on the CPU are pasted box by box, each in the window its box reaches, with the
    boxes read on the host: the cost grows with the boxes' areas. Masks on an accelerator
    are pasted all at once, in chunks of boxes, with nothing read on the host (the device is
    not waited for): every pixel of the image gathers its map values through per-row and
    per-column source coordinates, which costs N x H x W whatever the boxes' sizes, and on
    the CPU several times the per-box paste. Both give the same masks, bit for bit: the
    batched paste computes each pixel's source coordinates and blend in the same float
    operations, in the same order, as the kernels the per-box paste calls on that device
    (F.grid_sample, F.interpolate), so a probability that lands exactly on the threshold
    falls on the same side.

    Args:
        masks: Tensor[N, M, M] (or Tensor[N, Mh, Mw]) probabilities.
        boxes: Tensor[N, 4] (x1, y1, x2, y2) in the image's pixels.
        image_size: (H, W).
        threshold: pixels with probability > threshold are 1.
        style: "det", "mmdet" or "torchvision".

    Returns:
        uint8 Tensor[N, H, W] on the masks' device.
    """
    if style not in PASTE_STYLES:
        raise ValueError(
            f"paste_masks: style must be one of {', '.join(PASTE_STYLES)}; got {style!r}"
        )
    if masks.device.type == "cpu":
        return _paste_per_box(masks, boxes, image_size, threshold, style)
    return _paste_batched(masks, boxes.to(masks.device), image_size, threshold, style)


def _paste_per_box(
    masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float, style: str
) -> Tensor:
    """paste_masks box by box, the boxes read on the host: one F.grid_sample ("det") or
    F.interpolate per box, over the window of pixels the box reaches."""
    if style != "det":
        return _paste_resized(masks, boxes, image_size, threshold, style)
    h, w = image_size
    n = masks.shape[0]
    out = torch.zeros(n, h, w, dtype=torch.uint8, device=masks.device)
    m_h, m_w = masks.shape[-2:]
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):  # one copy to the host
        bw, bh = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
        # Pixels up to half a map cell beyond the box still get some bilinear weight.
        mx, my = 0.5 * bw / m_w + 1, 0.5 * bh / m_h + 1
        c0, c1 = max(math.floor(x1 - mx), 0), min(math.ceil(x2 + mx), w)
        r0, r1 = max(math.floor(y1 - my), 0), min(math.ceil(y2 + my), h)
        if c1 <= c0 or r1 <= r0:
            continue
        xs = (torch.arange(c0, c1, device=masks.device, dtype=torch.float32) + 0.5 - x1) / bw
        ys = (torch.arange(r0, r1, device=masks.device, dtype=torch.float32) + 0.5 - y1) / bh
        gy, gx = torch.meshgrid(ys * 2 - 1, xs * 2 - 1, indexing="ij")
        grid = torch.stack([gx, gy], dim=-1)[None]
        sampled = F.grid_sample(
            masks[i][None, None].float(), grid, mode="bilinear", align_corners=False
        )[0, 0]
        out[i, r0:r1, c0:c1] = (sampled > threshold).to(torch.uint8)
    return out


def _paste_resized(
    masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float, style: str
) -> Tensor:
    """paste_masks' "mmdet" and "torchvision" styles box by box: each map resized onto its
    integer box by F.interpolate."""
    h, w = image_size
    n = masks.shape[0]
    out = torch.zeros(n, h, w, dtype=torch.uint8, device=masks.device)
    maps, corners = _maps_and_integer_boxes(masks, boxes, style)
    for i, (x1, y1, x2, y2) in enumerate(corners.tolist()):  # one copy to the host
        bw, bh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        resized = F.interpolate(
            maps[i][None, None], size=(bh, bw), mode="bilinear", align_corners=False
        )[0, 0]
        c0, c1 = max(x1, 0), min(x1 + bw, w)
        r0, r1 = max(y1, 0), min(y1 + bh, h)
        if c1 <= c0 or r1 <= r0:
            continue
        window = resized[r0 - y1 : r1 - y1, c0 - x1 : c1 - x1]
        out[i, r0:r1, c0:c1] = (window > threshold).to(torch.uint8)
    return out


def _maps_and_integer_boxes(masks: Tensor, boxes: Tensor, style: str) -> tuple[Tensor, Tensor]:
    """The float maps and int64 boxes Tensor[N, 4] of the "mmdet" and "torchvision" styles:
    for "torchvision" (expand_masks, expand_boxes) the maps with a zero border and the boxes
    grown by (M + 2) / M about their centres (M the maps' width, for both sides); then the
    boxes truncated toward zero, as both originals."""
    maps = masks.float()
    boxes = boxes.float()
    if style == "torchvision":
        m = maps.shape[-1]
        maps = F.pad(maps, (1, 1, 1, 1))
        scale = (m + 2) / m
        half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
        half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
        cx, cy = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
        boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)
    return maps, boxes.to(torch.int64)


class _Taps(NamedTuple):
    """Where each image row (or column) of each box reads its map, along one axis: the two
    map cells first, second (int64 Tensor[N, L]), their weights first_weight,
    second_weight (float32 Tensor[N, L]) and whether the per-box paste writes the pixel at
    all (inside, bool Tensor[N, L])."""

    first: Tensor
    second: Tensor
    first_weight: Tensor
    second_weight: Tensor
    inside: Tensor


def _paste_batched(
    masks: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float, style: str
) -> Tensor:
    """paste_masks of every box at once on the masks' device, nothing read on the host: the
    same uint8 Tensor[N, H, W] as _paste_per_box on that device, in chunks of boxes whose
    float intermediates stay under _PASTE_CHUNK_BYTES."""
    h, w = image_size
    n = masks.shape[0]
    out = torch.zeros(n, h, w, dtype=torch.uint8, device=masks.device)
    # The CPU's kernels round a few steps differently from CUDA's (see the helpers).
    on_cpu = masks.device.type == "cpu"
    if style == "det":
        maps = masks.float()
        x1, y1, x2, y2 = boxes.unbind(dim=1)
        cols, col_inside = _sampled_grid(x1, x2, maps.shape[-1], w, on_cpu)
        rows, row_inside = _sampled_grid(y1, y2, maps.shape[-2], h, on_cpu)
        per_pixel = 16  # the grid, the samples, the comparisons
    else:
        maps, corners = _maps_and_integer_boxes(masks, boxes, style)
        x1, y1, x2, y2 = corners.unbind(dim=1)
        col_taps = _resized_taps(x1, x2, maps.shape[-1], w)
        row_taps = _resized_taps(y1, y2, maps.shape[-2], h)
        col_inside, row_inside = col_taps.inside, row_taps.inside
        # Where the CPU's interpolate takes its kernel for small outputs (see _resized).
        small = (x2 - x1 + 1).clamp(min=1) + (y2 - y1 + 1).clamp(min=1) <= 128
        per_pixel = 64 if on_cpu else 40  # the gathered values, float64 products, the sums
    chunk = max(1, _PASTE_CHUNK_BYTES // max(per_pixel * h * w, 1))
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        if style == "det":
            probs = _sampled(maps[part], cols[part], rows[part])
        else:
            cols_part = _Taps(*(t[part] for t in col_taps))
            rows_part = _Taps(*(t[part] for t in row_taps))
            probs = _resized(maps[part], cols_part, rows_part, small[part] if on_cpu else None)
        inside = row_inside[part, :, None] & col_inside[part, None, :]
        out[part] = (probs > threshold) & inside
    return out


def _sampled_grid(
    lo: Tensor, hi: Tensor, size: int, length: int, on_cpu: bool
) -> tuple[Tensor, Tensor]:
    """The "det" style along one axis for boxes from lo to hi (Tensor[N]): the grid
    coordinates in [-1, 1] (float32 Tensor[N, length]) of image pixels 0..length-1, and the
    pixels in the window the per-box paste samples (bool Tensor[N, length]).

    The per-box paste computes the box's extent and window on the host in float64, then
    ((pixel + 0.5) - lo) / extent * 2 - 1 in float32 with the extent a host scalar, which
    CUDA's division multiplies by its float32 reciprocal and the CPU divides by. The window
    matters only to boxes shorter than 1e-6 (or inverted): beyond it any other box's
    samples are zero. Pixels outside it get a coordinate that samples nothing, -2."""
    lo64, hi64 = lo.double(), hi.double()
    extent = (hi64 - lo64).clamp(min=1e-6)
    # Pixels up to half a map cell beyond the box still get some bilinear weight. Tensors
    # for every operand: a host scalar divisor would be a reciprocal on CUDA.
    margin = extent * 0.5 / torch.full_like(extent, size) + 1
    pixels = torch.arange(length, device=lo.device, dtype=torch.float64)
    window = (pixels >= (lo64 - margin).floor()[:, None]) & (
        pixels < (hi64 + margin).ceil()[:, None]
    )
    offsets = (pixels.float() + 0.5) - lo.float()[:, None]
    extent = extent.float()[:, None]
    unit = offsets / extent if on_cpu else offsets * (1 / extent)
    return torch.where(window, unit * 2 - 1, -2.0), window


def _sampled(maps: Tensor, cols: Tensor, rows: Tensor) -> Tensor:
    """The "det" style's probabilities Tensor[N, H, W]: F.grid_sample itself over every
    pixel, each with its grid coordinate (cols Tensor[N, W], rows Tensor[N, H]) as the
    per-box paste gives it, so every sample is the per-box paste's."""
    n, h, w = maps.shape[0], rows.shape[1], cols.shape[1]
    grid = torch.stack([cols[:, None, :].expand(n, h, w), rows[:, :, None].expand(n, h, w)], -1)
    return F.grid_sample(maps[:, None], grid, mode="bilinear", align_corners=False)[:, 0]


def _resized_taps(lo: Tensor, hi: Tensor, size: int, length: int) -> _Taps:
    """The "mmdet" and "torchvision" styles along one axis for integer boxes from lo to hi
    (int64 Tensor[N]): image pixels 0..length-1 read the map of size cells resized by
    F.interpolate (bilinear, align_corners False) to the hi - lo + 1 pixels (at least 1)
    from lo, as its kernels compute the source (area_pixel_compute_source_index, then
    guard_index_and_lambda on the CPU): scale = size / pixels in float32, source
    scale * (offset + 0.5) - 0.5 rounded once (a fused multiply-add) and moved to 0 when
    negative, the cell below it (at most the last) and the next one (the same at the
    last), weights 1 - f and f."""
    extent = (hi - lo + 1).clamp(min=1)
    offsets = torch.arange(length, device=lo.device) - lo[:, None]
    inside = (offsets >= 0) & (offsets < extent[:, None])
    scale = torch.full(extent.shape, float(size), device=lo.device) / extent.float()
    source = _fused_multiply_add(offsets.float() + 0.5, scale[:, None], -0.5).clamp(min=0)
    below = source.floor().clamp(max=size - 1)
    second_weight = (source - below).clamp(0, 1)
    first = below.long()
    return _Taps(first, first + (first < size - 1), 1 - second_weight, second_weight, inside)


def _fused_multiply_add(a: Tensor, b: Tensor, c: Tensor | float) -> Tensor:
    """a * b + c of float32 operands rounded once to float32, as the compiled kernels' fused
    multiply-adds: the product is exact in float64, the sum (here of numbers of similar
    size) too, then one rounding."""
    return (a.double() * b + c).float()


def _resized(maps: Tensor, cols: _Taps, rows: _Taps, small: Tensor | None) -> Tensor:
    """The "mmdet" and "torchvision" styles' probabilities Tensor[N, H, W] of maps
    Tensor[N, Mh, Mw], blended as F.interpolate's kernels do.

    CUDA's kernel (upsample_bilinear2d_out_frame) and the CPU's general one
    (Interpolate<2>::eval) blend each of the two map rows along x, then the two along y,
    each blend a * wa + b * wb rounded with a's product fused into the sum. For outputs of
    at most 128 rows plus columns the CPU's kernel is another (cpu_upsample_linear_channels_
    last): the four cells' weights are products of the row and column weights, and
    v00 w00 + v01 w01 + v10 w10 + v11 w11 is rounded as three fused multiply-adds onto
    v01 w01. small (bool Tensor[N]): the boxes to blend that way, None for none.
    """
    n, m_h = maps.shape[:2]
    h, w = rows.first.shape[1], cols.first.shape[1]
    # Every map row's values at each image column's two cells: Tensor[N, Mh, W].
    left = maps.gather(2, cols.first[:, None, :].expand(n, m_h, w))
    right = maps.gather(2, cols.second[:, None, :].expand(n, m_h, w))
    across = _fused_multiply_add(
        left, cols.first_weight[:, None, :], right * cols.second_weight[:, None, :]
    )

    def at_rows(values: Tensor, cells: Tensor) -> Tensor:
        return values.gather(1, cells[:, :, None].expand(n, h, w))

    top, bottom = at_rows(across, rows.first), at_rows(across, rows.second)
    probs = _fused_multiply_add(
        top, rows.first_weight[:, :, None], bottom * rows.second_weight[:, :, None]
    )
    if small is None:
        return probs
    row_weights = (rows.first_weight[:, :, None], rows.second_weight[:, :, None])
    col_weights = (cols.first_weight[:, None, :], cols.second_weight[:, None, :])
    total = at_rows(right, rows.first) * (row_weights[0] * col_weights[1])
    for row, values, col in ((0, left, 0), (1, left, 0), (1, right, 1)):
        cells = at_rows(values, rows.second if row else rows.first)
        total = _fused_multiply_add(cells, row_weights[row] * col_weights[col], total)
    return torch.where(small[:, None, None], total, probs)
