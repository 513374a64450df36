"""Anchor generators: FPN (RPN / Faster R-CNN), RetinaNet octave anchors and SSD anchors.

Boxes are (x1, y1, x2, y2) in input-image pixels. Anchors of a level are ordered by location
(row-major over the feature map) and then by base anchor, matching a head's output viewed as
[B, H, W, A, ...].

Three styles place and round the anchors (det_heads.conventions):
- "det": an anchor of width w spans [cx - w/2, cx + w/2], cx = (x + center_offset) * stride.
- "mmdet" (the 2019 zoo, mmdet/core/anchor/anchor_generator.py gen_base_anchors): the base
  anchor is centred at ((base - 1) / 2), its corners ctr -+ 0.5 (w - 1) rounded; SSD's at
  ((stride - 1) / 2) (mmdet/models/anchor_heads/ssd_head.py).
- "torchvision" (torchvision/models/detection/anchor_utils.py AnchorGenerator): sizes
  truncated to integers, corners -+ w / 2 rounded, centred on the cell corner; a level's
  stride is the padded image size // its feature size, per axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from det_heads.conventions import ANCHOR_STYLES
from det_heads.tracing import DeviceCache


class AnchorGenerator:
    """Anchors of every ratio and scale at every feature-map location of every level.

    A base anchor of ratio r (height / width) and scale s on a level with base size b is
    w = b * s / sqrt(r), h = b * s * sqrt(r), ordered ratio-major then scale. Its centre is
    (x + center_offset) * stride for location x.

    Defaults are the 2019 RPN / Faster R-CNN FPN anchors: scale 8, ratios (0.5, 1, 2), strides
    4..64, base size = stride (so areas 32^2 .. 512^2).

    Args:
        strides: stride in pixels of each level.
        scales: anchor scales in units of the base size.
        ratios: height / width ratios.
        base_sizes: base size per level; defaults to the strides.
        center_offset: anchor centre within its cell, in strides (0: at the cell's corner);
            "det" style only.
        style: "det", "mmdet" or "torchvision" (see the module's docstring).
    """

    def __init__(
        self,
        strides: Sequence[int] = (4, 8, 16, 32, 64),
        scales: Sequence[float] = (8.0,),
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        *,
        base_sizes: Sequence[float] | None = None,
        center_offset: float = 0.0,
        style: str = "det",
    ) -> None:
        if base_sizes is not None and len(base_sizes) != len(strides):
            raise ValueError(
                f"AnchorGenerator: base_sizes needs one value per stride ({len(strides)}), "
                f"got {len(base_sizes)}"
            )
        _check_style(style)
        self.style = style
        self.strides = tuple(int(s) for s in strides)
        self.center_offset = float(center_offset) if style == "det" else 0.0
        sizes = base_sizes if base_sizes is not None else self.strides
        self.base_anchors = [
            _base_anchors(float(b), list(scales), list(ratios), style) for b in sizes
        ]

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_anchors(self) -> list[int]:
        """Anchors per location, for each level."""
        return [a.shape[0] for a in self.base_anchors]

    def level_strides(self, feat_sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """(stride_y, stride_x) of each level: the configured strides, or for the torchvision
        style the padded image size (the finest level's size times its stride) // the
        level's size, as torchvision computes them (800 // 13 = 61 on P6 of an 800-row
        image, not 64)."""
        if self.style != "torchvision":
            return [(s, s) for s in self.strides]
        image_h = feat_sizes[0][0] * self.strides[0]
        image_w = feat_sizes[0][1] * self.strides[0]
        return [(image_h // max(h, 1), image_w // max(w, 1)) for h, w in feat_sizes]

    def grid_anchors(
        self, feat_sizes: Sequence[tuple[int, int]], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """Anchors of every level.

        Args:
            feat_sizes: (H_l, W_l) of each level.
            device: where the anchors are made.

        Returns:
            Per level Tensor[H_l * W_l * A_l, 4] (x1, y1, x2, y2), pixels.
        """
        if len(feat_sizes) != self.num_levels:
            raise ValueError(
                f"AnchorGenerator: expected {self.num_levels} feature sizes, got {len(feat_sizes)}"
            )
        sizes = tuple((h, w) for h, w in feat_sizes)
        device = torch.device(device)
        return list(self._cache.get(("grid", sizes, device), lambda: self._grid(sizes, device)))

    @property
    def _cache(self) -> DeviceCache:
        """Grid anchors and valid flags of the latest feature sizes (each made once, not
        at every call: a step asks for them per image and per head call)."""
        cache = self.__dict__.get("_anchor_cache")
        if cache is None:
            cache = self.__dict__["_anchor_cache"] = DeviceCache(capacity=16)
        return cache

    def _grid(self, feat_sizes: Sequence[tuple[int, int]], device: torch.device) -> list[Tensor]:
        out = []
        strides = self.level_strides(feat_sizes)
        for (h, w), (stride_y, stride_x), base in zip(
            feat_sizes, strides, self.base_anchors, strict=True
        ):
            xs = torch.arange(w, device=device, dtype=torch.float32) * stride_x
            ys = torch.arange(h, device=device, dtype=torch.float32) * stride_y
            xs = xs + self.center_offset * stride_x
            ys = ys + self.center_offset * stride_y
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)
            out.append((shifts + base.to(device)[None]).reshape(-1, 4))
        return out

    def valid_flags(
        self,
        feat_sizes: Sequence[tuple[int, int]],
        pad_shape: tuple[int, int],
        img_shape: tuple[int, int],
        allowed_border: float = -1,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """Which anchors may be trained on.

        An anchor is valid when its location lies inside this image's padded size (a
        batch pads images to the largest one) and, if allowed_border >= 0, when the anchor
        lies inside the image grown by allowed_border pixels on every side.

        Args:
            feat_sizes: (H_l, W_l) of each level.
            pad_shape: (h, w) of this image after padding.
            img_shape: (h, w) of this image before padding.
            allowed_border: pixels an anchor may cross the image border by; < 0: any.
            device: where the flags are made.

        Returns:
            Per level bool Tensor[H_l * W_l * A_l].
        """
        sizes = tuple((h, w) for h, w in feat_sizes)
        pad, img = tuple(pad_shape[:2]), tuple(img_shape[:2])
        device = torch.device(device)
        key = ("valid", sizes, pad, img, float(allowed_border), device)
        return list(
            self._cache.get(key, lambda: self._valid_flags(sizes, pad, img, allowed_border, device))
        )

    def valid_flags_of_sizes(
        self,
        feat_sizes: Sequence[tuple[int, int]],
        pad_size: Tensor,
        img_size: Tensor,
        allowed_border: float = -1,
    ) -> list[Tensor]:
        """valid_flags with the sizes as device Tensors: pad_size and img_size Tensor[2]
        (h, w) on the flags' device. The same flags, computed by kernels that read the
        sizes (a step captured as a CUDA graph serves every image size of its bucket);
        nothing is cached but the anchors."""
        sizes = tuple((h, w) for h, w in feat_sizes)
        anchors = self.grid_anchors(sizes, pad_size.device)
        pad, img = pad_size.float(), img_size.float()
        flags = []
        for (h, w), stride, a, level in zip(
            sizes, self.strides, self.num_anchors, anchors, strict=True
        ):
            # y < min(ceil(pad_h / stride), h) for y in 0..h-1 is y * stride < pad_h.
            ys = torch.arange(h, device=pad.device) * float(stride) < pad[0]
            xs = torch.arange(w, device=pad.device) * float(stride) < pad[1]
            flags.append(_level_flags(ys, xs, a, level, img, allowed_border))
        return flags

    def _valid_flags(self, feat_sizes, pad_shape, img_shape, allowed_border, device):
        anchors = self.grid_anchors(feat_sizes, device)
        flags = []
        for (h, w), stride, a, level in zip(
            feat_sizes, self.strides, self.num_anchors, anchors, strict=True
        ):
            valid_h = min(math.ceil(pad_shape[0] / stride), h)
            valid_w = min(math.ceil(pad_shape[1] / stride), w)
            ys = torch.arange(h, device=device) < valid_h
            xs = torch.arange(w, device=device) < valid_w
            flags.append(_level_flags(ys, xs, a, level, img_shape, allowed_border))
        return flags


class RetinaAnchorGenerator(AnchorGenerator):
    """RetinaNet anchors: scales octave_base_scale * 2^(i / n) for i < n = scales_per_octave.

    Defaults from the 2019 RetinaNet config: octave base scale 4, 3 scales per octave,
    ratios (0.5, 1, 2), strides 8..128 (P3..P7), so 9 anchors per location.
    """

    def __init__(
        self,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        octave_base_scale: float = 4.0,
        scales_per_octave: int = 3,
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        *,
        center_offset: float = 0.0,
        style: str = "det",
    ) -> None:
        scales = [
            octave_base_scale * 2 ** (i / scales_per_octave) for i in range(scales_per_octave)
        ]
        super().__init__(strides, scales, ratios, center_offset=center_offset, style=style)


# SSD anchor settings of the 2019 ssd300_coco / ssd512_coco configs.
SSD_STRIDES = {300: (8, 16, 32, 64, 100, 300), 512: (8, 16, 32, 64, 128, 256, 512)}
SSD_RATIOS = {
    300: ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
    512: ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
}
SSD_BASESIZE_RATIO_RANGE = {300: (0.15, 0.9), 512: (0.1, 0.9)}


def ssd_sizes(input_size: int, basesize_ratio_range: tuple[float, float], num_levels: int):
    """(min_sizes, max_sizes) per level, the SSD paper's linear schedule as the zoo computed it.

    Levels 2.. spread min sizes linearly over basesize_ratio_range of the input size (whole
    percent steps); the first level gets a smaller size (7% / 15% of the input for the
    COCO 300 range starting at 0.15, 4% / 10% for the 512 range starting at 0.1, else 10% /
    20%).
    """
    low, high = (round(r * 100) for r in basesize_ratio_range)
    step = (high - low) // (num_levels - 2)
    min_sizes, max_sizes = [], []
    for r in range(low, high + 1, step):
        min_sizes.append(int(input_size * r / 100))
        max_sizes.append(int(input_size * (r + step) / 100))
    first = {15: (7, 15), 10: (4, 10)}.get(low, (10, 20)) if input_size in (300, 512) else (10, 20)
    min_sizes.insert(0, int(input_size * first[0] / 100))
    max_sizes.insert(0, int(input_size * first[1] / 100))
    return min_sizes[:num_levels], max_sizes[:num_levels]


class SSDAnchorGenerator(AnchorGenerator):
    """SSD anchors: per level, a min-size square, a sqrt(min * max) square and 1/r, r boxes.

    Per location and level the anchors are, in order: min-size ratio 1, sqrt(min * max)
    ratio 1, then min-size ratios 1/r and r for each r of the level. Centres at
    (x + 0.5) * stride.

    Args:
        input_size: 300 or 512 (the defaults of the other arguments depend on it).
        strides: stride of each level; default SSD_STRIDES[input_size].
        ratios: extra ratios of each level; default SSD_RATIOS[input_size].
        basesize_ratio_range: min sizes range as fractions of input_size (COCO defaults).
        min_sizes, max_sizes: explicit sizes, overriding basesize_ratio_range.
        style: "det" (centres at (x + 0.5) * stride, exact corners) or "mmdet" (centres at
            x * stride + (stride - 1) / 2, corners ctr -+ 0.5 (w - 1) rounded).
    """

    def __init__(
        self,
        input_size: int = 300,
        *,
        strides: Sequence[int] | None = None,
        ratios: Sequence[Sequence[float]] | None = None,
        basesize_ratio_range: tuple[float, float] | None = None,
        min_sizes: Sequence[float] | None = None,
        max_sizes: Sequence[float] | None = None,
        style: str = "det",
    ) -> None:
        if style not in ("det", "mmdet"):
            raise ValueError(f"SSDAnchorGenerator: style must be 'det' or 'mmdet', got {style!r}")
        if strides is None or ratios is None:
            if input_size not in SSD_STRIDES:
                raise ValueError(
                    f"SSDAnchorGenerator: no default strides/ratios for input_size {input_size}; "
                    "pass strides and ratios"
                )
        strides = tuple(strides if strides is not None else SSD_STRIDES[input_size])
        ratios = tuple(ratios if ratios is not None else SSD_RATIOS[input_size])
        if len(ratios) != len(strides):
            raise ValueError("SSDAnchorGenerator: ratios needs one entry per stride")
        if min_sizes is None or max_sizes is None:
            rng = basesize_ratio_range or SSD_BASESIZE_RATIO_RANGE.get(input_size, (0.2, 0.9))
            min_sizes, max_sizes = ssd_sizes(input_size, rng, len(strides))
        self.input_size = input_size
        self.style = style
        self.strides = strides
        self.center_offset = 0.5 if style == "det" else 0.0
        self.min_sizes = tuple(min_sizes)
        self.max_sizes = tuple(max_sizes)
        self.base_anchors = []
        for lo, hi, level_ratios, stride in zip(min_sizes, max_sizes, ratios, strides, strict=True):
            wh = [(lo, lo), (math.sqrt(lo * hi),) * 2]
            for q in (q for r in level_ratios for q in (1 / r, r)):
                wh.append((lo / math.sqrt(q), lo * math.sqrt(q)))
            if style == "mmdet":
                self.base_anchors.append(_legacy_boxes(wh, (stride - 1) / 2))
            else:
                self.base_anchors.append(_boxes_from_wh(wh))


def _check_style(style: str) -> None:
    if style not in ANCHOR_STYLES:
        raise ValueError(
            f"AnchorGenerator: style must be one of {', '.join(ANCHOR_STYLES)}; got {style!r}"
        )


# Base anchors are made on the CPU (also under a `with torch.device(...)` context) and moved
# to the feature maps' device by grid_anchors.
_CPU = torch.device("cpu")


def _boxes_from_wh(wh: list[tuple[float, float]]) -> Tensor:
    sizes = torch.tensor(wh, dtype=torch.float32, device=_CPU)
    return torch.cat([-0.5 * sizes, 0.5 * sizes], dim=1)


def _legacy_boxes(wh: list[tuple[float, float]], center: float) -> Tensor:
    """The 2019 corners: ctr -+ 0.5 (w - 1), rounded (half to even, as torch.round)."""
    sizes = torch.tensor(wh, dtype=torch.float32, device=_CPU)
    half = 0.5 * (sizes - 1)
    return torch.cat([center - half, center + half], dim=1).round()


def _base_anchors(base: float, scales: list[float], ratios: list[float], style: str) -> Tensor:
    """Base anchors ratio-major then scale; the mmdet and torchvision styles in float32, as
    the original code computed them (their rounding depends on it)."""
    h_ratios = torch.sqrt(torch.tensor(ratios, dtype=torch.float32, device=_CPU))
    w_ratios = 1 / h_ratios
    scale = torch.tensor(scales, dtype=torch.float32, device=_CPU)
    if style == "torchvision":
        # torchvision's sizes are integers (int(32 * 2 ** (1 / 3)) = 40 for RetinaNet).
        sizes = [float(int(base * s)) for s in scales]
        sizes = torch.tensor(sizes, dtype=torch.float32, device=_CPU)
        ws = (w_ratios[:, None] * sizes[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * sizes[None, :]).reshape(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()
    ws = (base * w_ratios[:, None] * scale[None, :]).reshape(-1)
    hs = (base * h_ratios[:, None] * scale[None, :]).reshape(-1)
    if style == "mmdet":
        return _legacy_boxes(torch.stack([ws, hs], dim=1).tolist(), 0.5 * (base - 1))
    wh = [(base * s / math.sqrt(r), base * s * math.sqrt(r)) for r in ratios for s in scales]
    return _boxes_from_wh(wh)


def _level_flags(
    ys: Tensor,
    xs: Tensor,
    num_anchors: int,
    level: Tensor,
    img: Sequence[float] | Tensor,
    allowed_border: float,
) -> Tensor:
    """One level's anchor flags: bool Tensor[h * w * num_anchors], the anchors of the grid
    cells in the padded image (rows ys bool[h], columns xs bool[w]) that, with
    allowed_border >= 0, also lie within that many pixels of the image (img: its (h, w),
    host numbers or device scalars; level: the level's anchors Tensor[h * w * A, 4])."""
    cells = (ys[:, None] & xs[None, :]).reshape(-1, 1).expand(-1, num_anchors).reshape(-1)
    if allowed_border < 0:
        return cells
    b = float(allowed_border)
    inside = (
        (level[:, 0] >= -b)
        & (level[:, 1] >= -b)
        & (level[:, 2] < img[1] + b)
        & (level[:, 3] < img[0] + b)
    )
    return cells & inside
