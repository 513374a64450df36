"""torch.nn.Module wrappers of the ops (need torch)."""

from det_ops.modules.deform_roi_pool import (
    DeformRoIPool,
    DeformRoIPoolPack,
    ModulatedDeformRoIPoolPack,
)
from det_ops.modules.roi import RoIAlign, RoIPool

__all__ = [
    "DeformRoIPool",
    "DeformRoIPoolPack",
    "ModulatedDeformRoIPoolPack",
    "RoIAlign",
    "RoIPool",
]
