"""Image decoding: torchvision.io first (libjpeg-turbo / libpng, no PIL round trip), PIL
for the formats torchvision cannot read."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, read_file

# torchvision 0.29 warns on every decode that TorchCodec will take over; the decoders are
# still the fastest at hand, and one warning per image would flood a training log.
warnings.filterwarnings(
    "ignore",
    message="The image decoding and encoding capabilities of TorchVision",
    category=DeprecationWarning,
)


def read_image(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """An RGB image with values in [0, 255].

    Args:
        path: the image file.
        dtype: float32 (default) or uint8 (as decoded; the transforms resize uint8 images
            faster and convert them to float when they normalise).

    Returns:
        Tensor[3, H, W] of that dtype, RGB, values 0..255.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: neither torchvision nor PIL can decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist; check the image directory")
    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError):
        image = _read_with_pil(path)
    return image.to(dtype)


def _read_with_pil(path: Path) -> Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot decode image file {path}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1)
