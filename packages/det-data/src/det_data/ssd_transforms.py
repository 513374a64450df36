"""SSD's training augmentation (Liu et al., 2016), as the 2019 zoo's SSD300/512 configs use it.

Photometric distortion, zoom-out (Expand), min-IoU random crop, then a square resize. Each
transform is a callable ``t(image, meta, target) -> (image, meta, target)`` on float32
Tensor[3, H, W] RGB images in 0..255, like det_data.transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.ops import box_iou

from det_data.detection_dataset import Sample
from det_data.transforms import BOX_KEYS, Compose, Normalize, RandomFlip, Resize, ToFloat

# The zoo's SSD normalisation: mean subtraction only, RGB.
SSD_MEAN = (123.675, 116.28, 103.53)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _coin() -> bool:
    return bool(torch.randint(2, ()))


class PhotoMetricDistortion:
    """Random brightness, contrast, saturation and hue, and a random channel swap.

    Steps (each applied with probability 0.5): 1. add a brightness delta in
    [-brightness_delta, brightness_delta]; 2. scale contrast by a factor in contrast_range
    (before or after the colour steps, at random); 3. scale saturation by a factor in
    saturation_range; 4. rotate hue by up to hue_delta degrees; 5. permute the channels.
    Saturation and hue are torchvision's adjust_saturation / adjust_hue on the 0..1 scale.

    Args:
        brightness_delta: 32 in the zoo.
        contrast_range, saturation_range: (0.5, 1.5) in the zoo.
        hue_delta: 18 degrees in the zoo.
    """

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18,
    ) -> None:
        if brightness_delta < 0 or hue_delta < 0 or not 0 <= hue_delta <= 180:
            raise ValueError(
                "PhotoMetricDistortion: brightness_delta must be >= 0 and hue_delta in "
                f"[0, 180], got {brightness_delta}, {hue_delta}"
            )
        for name, (low, high) in (
            ("contrast_range", contrast_range),
            ("saturation_range", saturation_range),
        ):
            if not 0 <= low <= high:
                raise ValueError(f"PhotoMetricDistortion: {name} must be 0 <= low <= high")
        self.brightness_delta = brightness_delta
        self.contrast_range = contrast_range
        self.saturation_range = saturation_range
        self.hue_delta = hue_delta

    def _contrast(self, image: Tensor) -> Tensor:
        return image * _uniform(*self.contrast_range) if _coin() else image

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        image = image.to(torch.float32)
        if _coin():
            image = image + _uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = _coin()
        if contrast_first:
            image = self._contrast(image)
        saturation = _uniform(*self.saturation_range) if _coin() else 1.0
        hue = _uniform(-self.hue_delta, self.hue_delta) / 360 if _coin() else 0.0
        if saturation != 1.0 or hue != 0.0:
            # torchvision's colour operations work on the 0..1 scale (and clamp to it)
            colour = (image / 255).clamp(0, 1)
            if saturation != 1.0:
                colour = TF.adjust_saturation(colour, saturation)
            if hue != 0.0:
                colour = TF.adjust_hue(colour, hue)
            image = colour * 255
        if not contrast_first:
            image = self._contrast(image)
        if _coin():
            image = image[torch.randperm(3)]
        return image, meta, target

    def __repr__(self) -> str:
        return (
            f"PhotoMetricDistortion(brightness_delta={self.brightness_delta}, "
            f"contrast_range={self.contrast_range}, saturation_range={self.saturation_range}, "
            f"hue_delta={self.hue_delta})"
        )


class Expand:
    """Zoom out: with probability p, place the image at a random spot of a canvas
    ratio times larger (ratio uniform in ratio_range) filled with the mean colour.

    Args:
        mean: the fill colour, RGB on the 0..255 scale.
        ratio_range: (1, 4) in the zoo.
        p: 0.5 in the zoo.
    """

    def __init__(
        self,
        mean: Sequence[float] = SSD_MEAN,
        ratio_range: tuple[float, float] = (1, 4),
        p: float = 0.5,
    ) -> None:
        if not 1 <= ratio_range[0] <= ratio_range[1]:
            raise ValueError(f"Expand: ratio_range must be 1 <= low <= high, got {ratio_range}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.ratio_range = ratio_range
        self.p = p

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        if float(torch.rand(())) >= self.p:
            return image, meta, target
        h, w = image.shape[-2:]
        ratio = _uniform(*self.ratio_range)
        new_h, new_w = int(h * ratio), int(w * ratio)
        top = int(_uniform(0, new_h - h))
        left = int(_uniform(0, new_w - w))
        canvas = self.mean.expand(3, new_h, new_w).clone()
        canvas[:, top : top + h, left : left + w] = image
        shift = torch.tensor([left, top, left, top], dtype=torch.float32)
        target = dict(target)
        for key in BOX_KEYS:
            if key in target:
                boxes = target[key].clone()
                boxes[:, :4] += shift
                target[key] = boxes
        if "masks" in target:
            target["masks"] = target["masks"].expand(top, left, new_h, new_w)
        meta = {**meta, "img_shape": (new_h, new_w, 3), "pad_shape": (new_h, new_w, 3)}
        return canvas, meta, target

    def __repr__(self) -> str:
        return f"Expand(ratio_range={self.ratio_range}, p={self.p})"


class MinIoURandomCrop:
    """Crop a random patch that overlaps every kept object by at least a drawn IoU.

    Steps: 1. draw a mode among (keep the image, *min_ious, 0); 2. up to `trials` times,
    draw a patch with sides in [min_crop_size, 1] of the image's and aspect ratio within
    [0.5, 2]; 3. accept it when every ground-truth box overlaps it by IoU >= the mode and
    at least one box centre lies inside; 4. keep the boxes whose centres are inside,
    clipped to the patch. After `attempts` modes without a patch, the image is unchanged.

    Args:
        min_ious: (0.1, 0.3, 0.5, 0.7, 0.9) in the zoo.
        min_crop_size: 0.3 in the zoo.
        trials: patches tried per mode.
        attempts: modes drawn before giving up (the original loops without bound).
    """

    def __init__(
        self,
        min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        trials: int = 50,
        attempts: int = 20,
    ) -> None:
        if not 0 < min_crop_size <= 1:
            raise ValueError(
                f"MinIoURandomCrop: min_crop_size must be in (0, 1], got {min_crop_size}"
            )
        self.modes = (1.0, *(float(v) for v in min_ious), 0.0)
        self.min_crop_size = min_crop_size
        self.trials = trials
        self.attempts = attempts

    def __call__(self, image: Tensor, meta: dict[str, Any], target: dict[str, Any]) -> Sample:
        boxes = target["boxes"]
        if boxes.shape[0] == 0:
            return image, meta, target
        h, w = image.shape[-2:]
        for _ in range(self.attempts):
            mode = self.modes[int(torch.randint(len(self.modes), ()))]
            if mode == 1.0:
                return image, meta, target
            for _ in range(self.trials):
                new_w = _uniform(self.min_crop_size * w, w)
                new_h = _uniform(self.min_crop_size * h, h)
                if not 0.5 <= new_h / new_w <= 2:
                    continue
                left, top = _uniform(0, w - new_w), _uniform(0, h - new_h)
                patch = torch.tensor(
                    [[int(left), int(top), int(left + new_w), int(top + new_h)]],
                    dtype=torch.float32,
                )
                if patch[0, 2] <= patch[0, 0] or patch[0, 3] <= patch[0, 1]:
                    continue
                if box_iou(patch, boxes[:, :4].float()).min() < mode:
                    continue
                centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
                inside = (
                    (centres[:, 0] > patch[0, 0])
                    & (centres[:, 1] > patch[0, 1])
                    & (centres[:, 0] < patch[0, 2])
                    & (centres[:, 1] < patch[0, 3])
                )
                if not inside.any():
                    continue
                return crop_sample(image, meta, target, patch[0].long().tolist(), inside)
        return image, meta, target

    def __repr__(self) -> str:
        return f"MinIoURandomCrop(modes={self.modes}, min_crop_size={self.min_crop_size})"


def crop_sample(
    image: Tensor, meta: dict[str, Any], target: dict[str, Any], patch: list[int], keep: Tensor
) -> Sample:
    """The sample cut to patch (x1, y1, x2, y2), keeping the objects flagged in keep.

    Boxes (and ignore boxes) are shifted and clipped to the patch; ignore boxes left empty
    are dropped; masks are cropped.
    """
    x1, y1, x2, y2 = patch
    shift = torch.tensor([x1, y1, x1, y1], dtype=torch.float32)
    size = torch.tensor([x2 - x1, y2 - y1, x2 - x1, y2 - y1], dtype=torch.float32)
    target = dict(target)
    for key in ("boxes", "labels"):
        if key in target:
            target[key] = target[key][keep]
    for key in BOX_KEYS:
        if key in target:
            boxes = target[key].clone()
            boxes[:, :4] = torch.minimum(torch.clamp(boxes[:, :4] - shift, min=0), size)
            if key != "boxes":
                boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
            target[key] = boxes
    if "masks" in target:
        target["masks"] = target["masks"].select(keep).crop(x1, y1, x2, y2)
    meta = {**meta, "img_shape": (y2 - y1, x2 - x1, 3), "pad_shape": (y2 - y1, x2 - x1, 3)}
    return image[:, y1:y2, x1:x2], meta, target


def ssd_train_transforms(size: int = 300) -> Compose:
    """SSD300/512 training: distortion, expand, min-IoU crop, square resize, flip, mean."""
    return Compose(
        [
            PhotoMetricDistortion(),
            Expand(),
            MinIoURandomCrop(),
            Resize((size, size), keep_ratio=False),
            RandomFlip(0.5),
            Normalize(SSD_MEAN, (1.0, 1.0, 1.0)),
        ]
    )


def ssd_test_transforms(size: int = 300) -> Compose:
    """SSD300/512 testing: square resize and mean subtraction.

    A convenience for using det-data on its own: the SSD rows' test pipeline in the
    project's commands (det_engine.data.inference_transforms) is det_models' preprocessing,
    ``det_models.preprocess_image``, which det-data may not import (docs/design.md).
    """
    return Compose(
        [ToFloat(), Resize((size, size), keep_ratio=False), Normalize(SSD_MEAN, (1.0, 1.0, 1.0))]
    )
