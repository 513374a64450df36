"""Image files as tensors: det_io.read_rgb's pixels (the project's one decoder), channels
first."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from det_io import read_rgb


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
        ValueError: it cannot be decoded (det_io.read_rgb).
    """
    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1).to(dtype)
