"""RoI (second-stage) heads: box head, mask head, standard and cascade RoI heads."""

from det_heads.roi.bbox_head import BBoxHead
from det_heads.roi.mask_head import MaskHead, mask_targets, paste_masks
from det_heads.roi.standard_roi_head import StandardRoIHead

__all__ = ["BBoxHead", "MaskHead", "StandardRoIHead", "mask_targets", "paste_masks"]
