"""Pasting each box's mask probabilities back into the image as a binary mask."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

PASTE_STYLES = ("det", "mmdet", "torchvision")


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
    ((x + 0.5 - x1) / (x2 - x1)) * M. Only a window around each box is sampled, so the cost
    grows with the box areas, not with N x H x W.

    "mmdet" (mmdet/models/mask_heads/fcn_mask_head.py get_seg_masks): the box truncated to
    integers, the map resized bilinearly (half-pixel centres, no antialiasing) to
    (x2 - x1 + 1) x (y2 - y1 + 1) and written at (x1, y1).

    "torchvision" (torchvision/models/detection/roi_heads.py paste_masks_in_image): the map
    padded by one zero pixel per side and the box grown by (M + 2) / M about its centre,
    then as "mmdet".

    Args:
        masks: Tensor[N, M, M] probabilities.
        boxes: Tensor[N, 4] (x1, y1, x2, y2) in the image's pixels.
        image_size: (H, W).
        threshold: pixels with probability > threshold are 1.
        style: "det", "mmdet" or "torchvision".

    Returns:
        uint8 Tensor[N, H, W].
    """
    if style not in PASTE_STYLES:
        raise ValueError(
            f"paste_masks: style must be one of {', '.join(PASTE_STYLES)}; got {style!r}"
        )
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
    """paste_masks' "mmdet" and "torchvision" styles: each map resized onto its integer box."""
    h, w = image_size
    n = masks.shape[0]
    out = torch.zeros(n, h, w, dtype=torch.uint8, device=masks.device)
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
    corners = boxes.to(torch.int64).tolist()  # truncation toward zero, as both originals
    for i, (x1, y1, x2, y2) in enumerate(corners):
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
