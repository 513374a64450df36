"""Checkpoint converters: the 2019 zoo's mmdetection files and torchvision's detection models.

Both return a `Converted` (our state dict and the source keys that had no place in it); they
read files the user already has and download nothing.
"""

from det_models.convert.common import Converted
from det_models.convert.mmdet import from_mmdet, is_mmdet_layout
from det_models.convert.torchvision import TORCHVISION_MODELS, from_torchvision, torchvision_config

__all__ = [
    "TORCHVISION_MODELS",
    "Converted",
    "from_mmdet",
    "from_torchvision",
    "is_mmdet_layout",
    "torchvision_config",
]
