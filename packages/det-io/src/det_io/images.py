"""Image files decoded to RGB pixels: the project's one decoder (:func:`read_rgb`).

Training, evaluation, ``det_models.Detector``, the demo and the ONNX runtime all read images
through it, so every path sees the same pixels for a file. torchvision.io decodes first
(libjpeg-turbo / libpng, no PIL round trip) when it is installed; Pillow reads the formats
torchvision cannot (and everything, without torchvision). A file that neither decodes is a
``ValueError``, never code run: the decoders only read pixels.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

# torchvision 0.29 warns on every decode that TorchCodec will take over; the decoders are
# still the fastest at hand, and one warning per image would flood a training log.
warnings.filterwarnings(
    "ignore",
    message="The image decoding and encoding capabilities of TorchVision",
    category=DeprecationWarning,
)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """The pixels of an image file.

    Args:
        path: the image file (JPEG, PNG, or any format Pillow reads).

    Returns:
        uint8 ndarray[H, W, 3], RGB. With torchvision it is a view of the decoded
        Tensor[3, H, W]'s memory (``torch.from_numpy(a).permute(2, 0, 1)`` gets that tensor
        back without a copy).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: neither torchvision nor Pillow can decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    error: Exception | None = None
    try:
        from torchvision.io import ImageReadMode, decode_image, read_file
    except ImportError as e:
        error = e
    else:
        try:
            pixels = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
            return pixels.permute(1, 2, 0).numpy()
        except (RuntimeError, ValueError) as e:
            error = e
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ValueError(f"cannot decode image file {path}: {error}") from error
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))  # writable, unlike asarray's
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot decode image file {path}: {e}") from e


__all__ = ["read_rgb"]
