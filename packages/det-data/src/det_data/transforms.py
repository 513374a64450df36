"""The zoo's image transforms on (image, meta, target) samples.

Each transform is a callable ``t(image, meta, target) -> (image, meta, target)``. Images are
Tensor[3, H, W] RGB with values in 0..255 until Normalize (uint8 as decoded, or float32);
boxes are x1, y1, x2, y2
in pixels of the current image (x2 = x + w, so a flip maps x to ``width - x``). Random
choices come from ``torch``'s generator, so DataLoader workers draw different ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from det_data.detection_dataset import Sample, Transform

# The keys of a target that hold boxes (first four columns x1, y1, x2, y2).
BOX_KEYS = ("boxes", "ignore_boxes", "proposals")


class Compose:
    """Applies transforms in order.

    Args:
        transforms: the callables, each ``t(image, meta, target) -> (image, meta, target)``.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        for t in self.transforms:
            image, meta, target = t(image, meta, target)
        return image, meta, target

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


def rescaled_size(height: int, width: int, long_edge: int, short_edge: int) -> tuple[int, int]:
    """The (height, width) of an image rescaled keeping its ratio so that its long side is
    at most long_edge and its short side at most short_edge (one of them reached)."""
    scale = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_sample(
    image: Tensor,
    meta: dict[str, Any],
    target: dict[str, Any],
    height: int,
    width: int,
    *,
    legacy_scale: float | None = None,
) -> Sample:
    """The sample resized to (height, width): image bilinear, boxes scaled per axis and
    clipped, masks resized, meta scale_factor compounded and img_shape/pad_shape set.

    With legacy_scale (the 2019 pipeline, mmcv imrescale / imresize) the image is resized
    bilinearly without antialiasing and rounded to 8 bits, and a keep-ratio resize's scale
    factor is that one number on both axes (the sides were rounded from it).
    """
    old_h, old_w = image.shape[-2:]
    if legacy_scale is not None:
        if (height, width) != (old_h, old_w):
            resized = F.interpolate(
                image[None].float(), size=(height, width), mode="bilinear", align_corners=False
            )[0]
            image = resized.round().clamp(0, 255).to(image.dtype)
    elif image.dtype == torch.uint8:
        # torchvision's uint8 path (vectorised; antialiased when shrinking, as image
        # libraries resize photos)
        image = TF.resize(image, [height, width], antialias=True)
    elif (height, width) != (old_h, old_w):
        # The call det_models.preprocessing makes: float images resize to the same values.
        image = F.interpolate(
            image[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )[0]
    sx, sy = width / old_w, height / old_h
    if legacy_scale is not None and legacy_scale > 0:
        sx = sy = legacy_scale
    target = resize_target(target, sx, sy, height, width)
    old = meta.get("scale_factor", (1.0, 1.0, 1.0, 1.0))
    meta = dict(meta)
    meta["scale_factor"] = (old[0] * sx, old[1] * sy, old[2] * sx, old[3] * sy)
    meta["img_shape"] = (height, width, 3)
    meta["pad_shape"] = (height, width, 3)
    return image, meta, target


def resize_target(
    target: dict[str, Any], sx: float, sy: float, height: int, width: int
) -> dict[str, Any]:
    """A sample's target on its image resized to (height, width): boxes (and proposals,
    ignore_boxes) scaled by (sx, sy) and clipped to the new image, masks resized.

    Args:
        target: the target dict of a sample (docs/design.md); other keys are kept.
        sx, sy: the horizontal and vertical scale factors from old to new pixels.
        height, width: the resized image's size.

    Returns:
        A new dict; the given one is not changed.
    """
    scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
    target = dict(target)
    for key in BOX_KEYS:
        if key in target:
            boxes = target[key].clone()
            boxes[:, :4] = boxes[:, :4] * scale
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, height)
            target[key] = boxes
    if "masks" in target:
        target["masks"] = target["masks"].resize(height, width)
    return target


class Resize:
    """Resize to one of the given scales, keeping the aspect ratio (the zoo's default).

    With keep_ratio, a scale (long, short) bounds the image's long and short sides: (1333,
    800) takes a 640 x 480 image to 1067 x 800. Multi-scale training draws a scale per
    image: mode "value" picks one of ``scales``; mode "range" draws the long edge uniformly
    between the smallest and largest long edges given and the short edge likewise (the
    zoo's ``multiscale_mode='range'``). Without keep_ratio a scale is (width, height).

    Args:
        scales: one (long, short) pair or several.
        mode: "value" or "range" (range needs two or more scales).
        keep_ratio: keep the aspect ratio.
        legacy: resize as the 2019 pipeline did (see resize_sample).
    """

    def __init__(
        self,
        scales: tuple[int, int] | Sequence[tuple[int, int]] = (1333, 800),
        mode: str = "value",
        keep_ratio: bool = True,
        *,
        legacy: bool = False,
    ) -> None:
        if isinstance(scales[0], int):
            scales = [scales]  # type: ignore[list-item]
        self.scales = [tuple(int(v) for v in s) for s in scales]  # type: ignore[union-attr]
        if any(len(s) != 2 or min(s) <= 0 for s in self.scales):
            raise ValueError(f"Resize: scales must be positive (long, short) pairs, got {scales}")
        if mode not in ("value", "range"):
            raise ValueError(f"Resize: mode must be 'value' or 'range', got {mode!r}")
        if mode == "range" and len(self.scales) < 2:
            raise ValueError("Resize: mode 'range' needs at least two scales")
        self.mode = mode
        self.keep_ratio = keep_ratio
        self.legacy = legacy

    def sample_scale(self) -> tuple[int, int]:
        """One scale drawn as the mode says."""
        if self.mode == "value":
            return self.scales[int(torch.randint(len(self.scales), ()))]
        longs = [max(s) for s in self.scales]
        shorts = [min(s) for s in self.scales]
        long_edge = int(torch.randint(min(longs), max(longs) + 1, ()))
        short_edge = int(torch.randint(min(shorts), max(shorts) + 1, ()))
        return long_edge, short_edge

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        scale = self.sample_scale()
        h, w = image.shape[-2:]
        factor = None
        if self.keep_ratio:
            new_h, new_w = rescaled_size(h, w, max(scale), min(scale))
            factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
        else:
            new_w, new_h = scale
        if not self.legacy:
            return resize_sample(image, meta, target, new_h, new_w)
        # Without keep_ratio the 2019 scale factor is per axis: 0 says "the sides' ratios".
        legacy_scale = factor if factor is not None else 0.0
        return resize_sample(image, meta, target, new_h, new_w, legacy_scale=legacy_scale)

    def __repr__(self) -> str:
        return (
            f"Resize(scales={self.scales}, mode={self.mode!r}, keep_ratio={self.keep_ratio}, "
            f"legacy={self.legacy})"
        )


class ToFloat:
    """Converts the image to float32 (0..255), so that a following Resize does not round to
    8 bits: the test pipelines here start with it to give the tensors
    `det_models.preprocess_image` computes from the same image."""

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        return image.to(torch.float32), meta, target

    def __repr__(self) -> str:
        return "ToFloat()"


def flip_boxes(boxes: Tensor, width: int) -> Tensor:
    """Boxes Tensor[N, 4 | 5] (x1, y1, x2, y2[, score]) mirrored in an image of this width."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


class RandomFlip:
    """Horizontal flip of image, boxes and masks with probability p; sets meta["flip"].

    Args:
        p: the flip probability (0.5 in the zoo).
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        if self.p < 1.0 and float(torch.rand(())) >= self.p:
            return image, meta, target
        width = image.shape[-1]
        target = dict(target)
        for key in BOX_KEYS:
            if key in target:
                target[key] = flip_boxes(target[key], width)
        if "masks" in target:
            target["masks"] = target["masks"].flip()
        meta = {**meta, "flip": not meta.get("flip", False)}
        return image.flip(-1), meta, target

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


class Normalize:
    """Per-channel (image - mean) / std, optionally reordering RGB to BGR first.

    Args:
        mean, std: three values in the channel order the model expects.
        to_bgr: reorder the RGB image to BGR before normalising (caffe-style weights).
    """

    def __init__(
        self,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        to_bgr: bool = False,
    ) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"Normalize: need 3 means and 3 positive stds, got {mean}, {std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.inv_std = 1.0 / self.std
        self.to_bgr = to_bgr

    @classmethod
    def pytorch_style(cls) -> Normalize:
        """torchvision-trained backbones: RGB, ImageNet mean and std on the 0..255 scale."""
        return cls((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), to_bgr=False)

    @classmethod
    def caffe_style(cls) -> Normalize:
        """Detectron (caffe) backbones: BGR, mean subtracted, std 1."""
        return cls((102.9801, 115.9465, 122.7717), (1.0, 1.0, 1.0), to_bgr=True)

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        if self.to_bgr:
            image = image.flip(0)
        # One pass makes a new float image, the second scales it in place.
        return (image.to(torch.float32) - self.mean).mul_(self.inv_std), meta, target

    def __repr__(self) -> str:
        return (
            f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}, "
            f"to_bgr={self.to_bgr})"
        )


class Pad:
    """Zero padding at the bottom and right up to a multiple of size_divisor; sets pad_shape.

    Args:
        size_divisor: 32 in the zoo (the coarsest FPN stride).
        value: the padding value (0 after Normalize is the mean colour).
    """

    def __init__(self, size_divisor: int = 32, value: float = 0.0) -> None:
        if size_divisor <= 0:
            raise ValueError(f"Pad: size_divisor must be positive, got {size_divisor}")
        self.size_divisor = size_divisor
        self.value = value

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        h, w = image.shape[-2:]
        d = self.size_divisor
        ph, pw = math.ceil(h / d) * d, math.ceil(w / d) * d
        if (ph, pw) != (h, w):
            image = F.pad(image, (0, pw - w, 0, ph - h), value=self.value)
            if "masks" in target:
                target = {**target, "masks": target["masks"].pad(ph, pw)}
        return image, {**meta, "pad_shape": (ph, pw, 3)}, target

    def __repr__(self) -> str:
        return f"Pad(size_divisor={self.size_divisor})"


def zoo_train_transforms(
    scales: tuple[int, int] | Sequence[tuple[int, int]] = (1333, 800),
    mode: str = "value",
    caffe: bool = False,
) -> Compose:
    """The zoo's training pipeline: resize keeping ratio, flip 0.5, normalise.

    Padding to a multiple of 32 happens once, in :func:`det_data.collate` (which sets
    pad_shape), rather than per image and then again per batch.
    """
    norm = Normalize.caffe_style() if caffe else Normalize.pytorch_style()
    return Compose([Resize(scales, mode), RandomFlip(0.5), norm])


def zoo_test_transforms(scale: tuple[int, int] = (1333, 800), caffe: bool = False) -> Compose:
    """The zoo's test pipeline: resize keeping ratio (in float), normalise (padding: in
    collate).

    A convenience for using det-data on its own. The test pipeline the project's commands
    run for a zoo row (det_engine.data.inference_transforms) is det_models' preprocessing,
    ``det_models.preprocess_image``, which det-data may not import (docs/design.md); it
    also covers the rows' other settings (SSD's square, the 2019 resize, each row's scale
    and normalisation).
    """
    norm = Normalize.caffe_style() if caffe else Normalize.pytorch_style()
    return Compose([ToFloat(), Resize(scale), norm])
