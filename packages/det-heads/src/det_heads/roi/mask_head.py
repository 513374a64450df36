"""Mask R-CNN mask head and its training targets (pasting masks back: mask_paste.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_heads import kernels
from det_heads.conv_norm import ConvGN, check_norm, conv_with_norm
from det_heads.conventions import MASK_TARGETS


class MaskHead(nn.Module):
    """Convs over pooled RoI features, a 2x deconv, then one mask logit map per class.

    Defaults follow the 2019 Mask R-CNN config ("FCNMaskHead"): 4 3x3 convs of 256 over
    14x14 features, a stride-2 deconv to 28x28, class-specific masks, per-pixel binary
    cross entropy.

    Args:
        num_classes: C.
        in_channels: channels of the pooled features.
        conv_channels: channels of the convs and the deconv.
        num_convs: number of 3x3 convs.
        class_agnostic: one mask for every class.
        norm: None (convs with a bias) or "GN" (bias-free convs followed by GroupNorm, the
            zoo's GN rows).
        loss_weight: multiplier of the mask loss.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        conv_channels: int = 256,
        num_convs: int = 4,
        *,
        class_agnostic: bool = False,
        norm: str | None = None,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        check_norm("MaskHead", norm)
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.loss_weight = loss_weight
        self.convs = nn.ModuleList(
            conv_with_norm(
                in_channels if i == 0 else conv_channels, conv_channels, 3, norm, roi_features=True
            )
            for i in range(num_convs)
        )
        last = conv_channels if num_convs else in_channels
        self.deconv = nn.ConvTranspose2d(last, conv_channels, 2, stride=2)
        self.logits = nn.Conv2d(conv_channels, 1 if class_agnostic else num_classes, 1)
        for m in (*self.convs, self.deconv, self.logits):
            if not isinstance(m, ConvGN):  # a ConvGN has initialised itself
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, roi_feats: Tensor) -> Tensor:
        """Tensor[K, C_in, S, S] -> mask logits Tensor[K, C (or 1), 2 S, 2 S]."""
        x = roi_feats
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.logits(F.relu(self.deconv(x)))

    def select(self, mask_logits: Tensor, labels: Tensor) -> Tensor:
        """Tensor[K, C, M, M] -> Tensor[K, M, M], each RoI's map of its class labels[k]."""
        if self.class_agnostic:
            return mask_logits[:, 0]
        return mask_logits[torch.arange(labels.numel(), device=labels.device), labels]

    def loss(
        self,
        mask_logits: Tensor,
        mask_targets: Tensor,
        labels: Tensor,
        weights: Tensor | None = None,
    ) -> Tensor:
        """Mean binary cross entropy of each positive RoI's class map against its target.

        Args:
            mask_logits: Tensor[P, C, M, M]; mask_targets: Tensor[P, M, M] in [0, 1];
            labels: int64 Tensor[P] in 0..C-1.
            weights: bool Tensor[P], the RoIs that are positives (the others count for
                nothing, the mean is over the positives, counted on the device); None: all.
        """
        if labels.numel() == 0:
            return mask_logits.sum() * 0
        chosen = self.select(mask_logits, labels)
        targets = mask_targets.to(chosen.dtype)
        if weights is None:
            loss = F.binary_cross_entropy_with_logits(chosen, targets)
        else:
            pixels = F.binary_cross_entropy_with_logits(chosen, targets, reduction="none")
            total = torch.where(weights[:, None, None], pixels, 0.0).sum()
            positives = weights.sum().clamp(min=1).to(chosen.dtype)
            loss = total / (positives * (chosen.shape[1] * chosen.shape[2]))
        return self.loss_weight * loss


def _rasterize_polygons(
    polygons: Sequence[Any], box: Tensor, size: int | tuple[int, int]
) -> Tensor:
    """Union of polygons (flat x, y lists in image pixels) drawn into a grid over box: size x
    size cells, or rows x columns for a (rows, columns) size.

    A grid cell is inside when its centre is inside an odd number of edges' crossings
    (even-odd rule), which is how COCO polygons are filled.
    """
    rows, cols = (size, size) if isinstance(size, int) else size
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = cols / max(x2 - x1, 1e-6), rows / max(y2 - y1, 1e-6)
    py, px = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64) + 0.5,
        torch.arange(cols, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    out = torch.zeros(rows, cols, dtype=torch.bool)
    for poly in polygons:
        pts = torch.as_tensor(poly, dtype=torch.float64).reshape(-1, 2)
        if pts.shape[0] < 3:
            continue
        xs, ys = (pts[:, 0] - x1) * sx, (pts[:, 1] - y1) * sy
        xn, yn = xs.roll(-1), ys.roll(-1)
        inside = torch.zeros(rows, cols, dtype=torch.bool)
        for xa, ya, xb, yb in zip(xs, ys, xn, yn, strict=True):
            if ya == yb:
                continue
            straddles = (ya > py) != (yb > py)
            cross_x = xa + (py - ya) * (xb - xa) / (yb - ya)
            inside ^= straddles & (px < cross_x)
        out |= inside
    return out


def mask_targets(
    boxes: Tensor,
    gt_inds: Tensor,
    gt_masks: Any,
    size: int = 28,
    *,
    style: str = "det",
    valid: Tensor | None = None,
) -> Tensor:
    """The part of each RoI's gt mask under the RoI, resized to size x size.

    Args:
        boxes: Tensor[P, 4] RoIs (x1, y1, x2, y2), input pixels.
        gt_inds: int64 Tensor[P] index of each RoI's gt.
        gt_masks: the image's masks, either bitmaps Tensor[G, H, W] (bool / uint8 / float,
            input pixels) or a list of G objects, each a list of polygons [x0, y0, x1, ...].
        size: output side (28 in the zoo).
        style: "det": the mask sampled by RoIAlign with the half-pixel shift (adaptive
            samples per bin), then >= 0.5 (polygons are drawn straight into the RoI's
            grid). "mmdet" (v0.6 `core/mask/mask_target.py` mask_target_single): the mask
            cropped at the RoI truncated to integers, (x2 - x1 + 1) x (y2 - y1 + 1) pixels
            (as numpy slicing cuts it at the image's edge), resized bilinearly without
            antialiasing (OpenCV's INTER_LINEAR, pixel centres), then >= 0.5. "torchvision"
            (`roi_heads.py` project_masks_on_boxes): RoIAlign without the shift (adaptive
            samples per bin), not thresholded.
        valid: bool Tensor[P], the RoIs whose targets are used (the others' are zeros), or
            None for all. Only the host paths read it.

    Returns:
        Tensor[P, size, size] of boxes' dtype and device, in {0, 1} except for
        "torchvision" (in [0, 1]).

    Bitmaps in the "det" and "torchvision" styles are cut on the masks' device by one
    RoIAlign over the G masks, without a host synchronisation. The "mmdet" style (a resize
    per RoI to its own integer size) and polygons (drawn on the host) read the RoIs on the
    host: one copy per image.
    """
    if style not in MASK_TARGETS:
        raise ValueError(
            f"mask_targets: style must be one of {', '.join(MASK_TARGETS)}; got {style!r}"
        )
    p = boxes.shape[0]
    if p == 0:
        return boxes.new_zeros(0, size, size)
    if isinstance(gt_masks, Tensor) and style != "mmdet":
        if gt_masks.dim() != 3:
            raise ValueError(
                f"mask_targets: bitmap masks must be Tensor[G, H, W], got {list(gt_masks.shape)}"
            )
        return _aligned_targets(boxes, gt_inds, gt_masks, size, style)
    # The host paths: the RoIs, their gts and which are used, in one copy.
    keep = torch.ones_like(gt_inds, dtype=torch.bool) if valid is None else valid
    host = torch.cat([boxes.detach(), gt_inds[:, None].to(boxes), keep[:, None].to(boxes)], 1)
    host = host.cpu()
    keep = host[:, 5] > 0
    host_boxes, host_inds = host[keep, :4], host[keep, 4].long()
    out = torch.zeros(p, size, size)
    if host_boxes.shape[0]:
        out[keep] = _host_targets(host_boxes, host_inds, gt_masks, size, style)
    return out.to(boxes)


def _aligned_targets(
    boxes: Tensor, gt_inds: Tensor, gt_masks: Tensor, size: int, style: str
) -> Tensor:
    """The "det" / "torchvision" targets of bitmaps: RoIAlign on the gt masks themselves,
    each RoI reading its own gt's map (its batch index), on the boxes' device."""
    device = boxes.device
    masks = gt_masks.to(device, torch.float32)[:, None]
    rois = torch.cat([gt_inds.to(device, torch.float32)[:, None], boxes.detach().float()], 1)
    crops = kernels.roi_align(masks, rois, size, 1.0, 0, style == "det")[:, 0]
    if style == "torchvision":
        return crops.to(boxes.dtype)
    return (crops >= 0.5).to(boxes.dtype)


def _host_targets(boxes: Tensor, gt_inds: Tensor, gt_masks: Any, size: int, style: str) -> Tensor:
    """Targets of CPU boxes and gt indices: polygons drawn (at the boxes' precision), or
    from bitmaps (boxes in float32)."""
    if not isinstance(gt_masks, Tensor):
        if style == "det":
            out = [
                _rasterize_polygons(gt_masks[int(i)], box, size)
                for box, i in zip(boxes, gt_inds, strict=True)
            ]
            return torch.stack(out).float()
        gt_masks = _polygon_bitmaps(gt_masks, boxes, gt_inds)
    boxes = boxes.float()
    if gt_masks.dim() != 3:
        raise ValueError(
            f"mask_targets: bitmap masks must be Tensor[G, H, W], got {list(gt_masks.shape)}"
        )
    if style == "mmdet":
        return _cropped_and_resized(gt_masks.cpu()[gt_inds].to(torch.float32), boxes, size)
    return _aligned_targets(boxes, gt_inds, gt_masks.cpu(), size, style).float()


def _cropped_and_resized(masks: Tensor, boxes: Tensor, size: int) -> Tensor:
    """The 2019 mask targets: each mask Tensor[H, W] cut at its integer box and resized."""
    height, width = masks.shape[-2:]
    out = []
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.trunc().long().tolist(), strict=True):
        x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        crop = mask[y1 : y1 + h, x1 : x1 + w]
        resized = F.interpolate(
            crop[None, None], size=(size, size), mode="bilinear", align_corners=False
        )
        out.append(resized[0, 0] >= 0.5)
    return torch.stack(out).to(torch.float32)


def _polygon_bitmaps(polygons: Sequence[Any], boxes: Tensor, gt_inds: Tensor) -> Tensor:
    """Polygon masks drawn as image bitmaps Tensor[G, H, W] (each pixel inside when its centre
    is), on a canvas reaching just past the boxes: what the bitmap styles read."""
    reach = boxes.detach().amax(dim=0).ceil().long().tolist()
    width, height = reach[2] + 2, reach[3] + 2
    bitmaps = torch.zeros(len(polygons), height, width)
    canvas = torch.tensor([0.0, 0.0, float(width), float(height)])
    for g in sorted(set(gt_inds.tolist())):
        bitmaps[g] = _rasterize_polygons(polygons[g], canvas, (height, width)).float()
    return bitmaps
