"""torch.nn.Module wrappers of the ops (need torch)."""

from det_ops.modules.roi import RoIAlign, RoIPool

__all__ = ["RoIAlign", "RoIPool"]
