"""Parts the zoo needs beyond det-heads': GroupNorm FPN and heads, deformable RoI extraction."""

from det_models.parts.deform_roi_extractor import DeformRoIExtractor
from det_models.parts.group_norm import (
    ConvFCBBoxHead,
    ConvGN,
    GroupNormFPN,
    GroupNormMaskHead,
    RoIGroupNorm,
)

__all__ = [
    "ConvFCBBoxHead",
    "ConvGN",
    "DeformRoIExtractor",
    "GroupNormFPN",
    "GroupNormMaskHead",
    "RoIGroupNorm",
]
