"""RoI (second-stage) heads: box head, mask head, standard and cascade RoI heads."""

from det_heads.roi.bbox_head import BBoxHead
from det_heads.roi.cascade_roi_head import CascadeRoIHead, cascade_bbox_heads
from det_heads.roi.mask_head import MaskHead, mask_targets
from det_heads.roi.mask_paste import paste_masks
from det_heads.roi.standard_roi_head import StandardRoIHead

__all__ = [
    "BBoxHead",
    "CascadeRoIHead",
    "MaskHead",
    "StandardRoIHead",
    "cascade_bbox_heads",
    "mask_targets",
    "paste_masks",
]
