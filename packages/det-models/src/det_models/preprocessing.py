"""The test-time preprocessing of a zoo row, defined once: one image resized and normalised
on its own device (`preprocess_image`), and images padded into a batch (`pad_batch`); and
the training batches' normalisation on their device (`normalize_batch`).

`det_models.preprocess` (Detector.predict, the ONNX runner, the benchmarks) and the test
pipeline of det_engine.data (evaluation, the test command) both call `preprocess_image`, so
an image becomes the same tensor, bit for bit, whichever way it comes in. det-data keeps its
own transforms for training (det-models may not depend on det-data, nor the reverse).

The steps, in order:

1. resize: keeping the ratio within the row's (long, short) img_scale, or to SSD's fixed
   (width, height); float bilinear with antialiasing, or, with ``legacy_resize``, the 2019
   pipeline's bilinear without antialiasing rounded to 8 bits;
2. channel order: RGB to BGR for caffe-style means;
3. normalise: ``(image - mean) * (1 / std)`` in float32.

Padding (zeros at the bottom and right, to a multiple of the row's size divisor) is a batch
step: `pad_batch` here, det_data.collate in the data pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from det_heads.tracing import DeviceCache
from det_models.config import DataConfig

# The normalisation constants on each device, copied there once rather than per image.
_CONSTANTS = DeviceCache()


def rescaled_size(height: int, width: int, data: DataConfig) -> tuple[int, int]:
    """The (height, width) an image of (height, width) is resized to at test time.

    With keep_ratio, img_scale (long, short) bounds the long and short sides (one reached):
    (1333, 800) takes 480 x 640 (h x w) to 800 x 1067. Without, img_scale is (width, height).
    """
    if data.keep_ratio:
        long_edge, short_edge = max(data.img_scale), min(data.img_scale)
        scale = min(long_edge / max(height, width), short_edge / min(height, width))
        return int(height * scale + 0.5), int(width * scale + 0.5)
    return int(data.img_scale[1]), int(data.img_scale[0])


def padded_size(height: int, width: int, size_divisor: int | None) -> tuple[int, int]:
    """(height, width) rounded up to a multiple of size_divisor (None or 0: unchanged)."""
    divisor = size_divisor or 1
    return -(-height // divisor) * divisor, -(-width // divisor) * divisor


def preprocess_image(image: Tensor, data: DataConfig) -> tuple[Tensor, dict[str, Any]]:
    """One image resized and normalised as the row's test pipeline does, on its device.

    Every step runs where ``image`` lies: hand it a uint8 image already on the accelerator
    and nothing but the image crosses to it. The normalisation constants are computed on
    the CPU, so each device uses the same float32 mean and 1 / std, and copied to a device
    once (not per image).

    Args:
        image: Tensor[3, H, W] RGB on the 0..255 scale, uint8 or floating point, on any
            device.
        data: the row's data config (img_scale, keep_ratio, legacy_resize, normalize,
            size_divisor).

    Returns:
        (image float32 Tensor[3, h, w] on ``image``'s device, meta): meta is dict(ori_shape
        (H, W, 3), img_shape (h, w, 3), pad_shape (h, w, 3) rounded up to size_divisor,
        scale_factor (sx, sy, sx, sy) from original to resized pixels, flip False).

    Raises:
        ValueError: image is not a non-empty [3, H, W] tensor of uint8 or floating point.
    """
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a Tensor[3, H, W], got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"image must be a non-empty Tensor[3, H, W], got {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise ValueError(f"image must be uint8 or floating point (0..255), got {image.dtype}")
    height, width = image.shape[-2:]
    new_h, new_w = rescaled_size(height, width, data)
    img = image.to(torch.float32)
    sx, sy = new_w / width, new_h / height
    if data.legacy_resize:
        # The 2019 pipeline (mmcv imrescale): 8-bit bilinear without antialiasing, and a
        # keep-ratio scale factor of one number.
        if (new_h, new_w) != (height, width):
            img = F.interpolate(
                img[None], size=(new_h, new_w), mode="bilinear", align_corners=False
            )[0]
            img = img.round().clamp(0, 255)
        if data.keep_ratio:
            long_edge, short_edge = max(data.img_scale), min(data.img_scale)
            sx = sy = min(long_edge / max(height, width), short_edge / min(height, width))
    elif (new_h, new_w) != (height, width):
        img = F.interpolate(
            img[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
        )[0]
    norm = data.normalize
    if not norm.to_rgb:
        img = img.flip(0)  # RGB -> BGR: caffe-style means are given in BGR order
    mean, inv_std = _normalisation(tuple(norm.mean), tuple(norm.std), img.device)
    img = (img - mean).mul_(inv_std)
    meta = {
        "ori_shape": (height, width, 3),
        "img_shape": (new_h, new_w, 3),
        "pad_shape": (*padded_size(new_h, new_w, data.size_divisor), 3),
        "scale_factor": (sx, sy, sx, sy),
        "flip": False,
    }
    return img, meta


def _normalisation(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[Tensor, Tensor]:
    """(mean, 1 / std) float32 Tensor[3, 1, 1] on device: computed on the CPU, so every
    device uses the same values, and copied to a device once."""

    def make() -> tuple[Tensor, Tensor]:
        mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        inv_std = 1.0 / torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        return mean_t.to(device), inv_std.to(device)

    return _CONSTANTS.get((mean, std, device), make)


def normalize_batch(images: Tensor, metas: Sequence[dict[str, Any]], data: DataConfig) -> Tensor:
    """A padded training batch of 0..255 images normalised on its device, padding kept zero.

    The training loader hands batches of resized, flipped images still on the 0..255 scale
    (uint8 as decoded: a quarter of the bytes to copy, from pinned memory on a GPU) padded
    with zeros by det_data.collate; this is the normalisation det_data.Normalize would have
    done per image, done once per batch where the batch is. Each pixel gets the same value
    as there, ``(image - mean) * (1 / std)`` in float32, and the padding past each image's
    ``img_shape`` is zero again (the mean colour), as if padded after normalising.

    Args:
        images: Tensor[B, 3, H, W] RGB on the 0..255 scale, uint8 or floating point.
        metas: the batch's metas; ``img_shape`` (h, w, 3) of each image (h <= H, w <= W).
        data: the row's data config (its ``normalize``: mean, std, to_rgb).

    Returns:
        float32 Tensor[B, 3, H, W] on ``images``' device.

    Raises:
        ValueError: images is not a [B, 3, H, W] batch of uint8 or floating point, or the
            metas do not match it.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a Tensor[B, 3, H, W], got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point (0..255), got {images.dtype}")
    if len(metas) != images.shape[0]:
        raise ValueError(f"metas: expected {images.shape[0]} (one per image), got {len(metas)}")
    height, width = images.shape[-2:]
    sizes = []
    for b, meta in enumerate(metas):
        h, w = meta["img_shape"][:2]
        if not (0 < h <= height and 0 < w <= width):
            raise ValueError(
                f"metas[{b}]['img_shape'] {tuple(meta['img_shape'])} does not fit the batch's "
                f"{height} x {width}"
            )
        sizes.append((h, w))
    norm = data.normalize
    img = images if norm.to_rgb else images.flip(1)  # caffe-style means are given in BGR
    mean, inv_std = _normalisation(tuple(norm.mean), tuple(norm.std), images.device)
    out = (img.to(torch.float32) - mean).mul_(inv_std)
    for b, (h, w) in enumerate(sizes):  # host integers: no read of the device
        if h < height:
            out[b, :, h:] = 0
        if w < width:
            out[b, :, :h, w:] = 0
    return out


def pad_batch(images: Sequence[Tensor], size_divisor: int | None) -> Tensor:
    """Images Tensor[3, h_i, w_i] stacked into one zero-padded batch on their device.

    Args:
        images: preprocessed images (see preprocess_image), all on one device.
        size_divisor: the batch's height and width are rounded up to a multiple of this
            (None or 0: the largest image's size, SSD's square).

    Returns:
        Tensor[B, 3, H, W], each image at the top left, zeros past it.
    """
    if len(images) == 0:
        raise ValueError("images: expected at least one image")
    height, width = padded_size(
        max(img.shape[-2] for img in images), max(img.shape[-1] for img in images), size_divisor
    )
    first = images[0]
    batch = first.new_zeros(len(images), first.shape[0], height, width)
    for b, img in enumerate(images):
        batch[b, :, : img.shape[-2], : img.shape[-1]] = img
    return batch
