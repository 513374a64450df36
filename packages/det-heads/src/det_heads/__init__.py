"""det-heads: FPN, anchors, box coders, assigners, samplers, losses, dense and RoI heads."""

from det_heads.anchors import AnchorGenerator, RetinaAnchorGenerator, SSDAnchorGenerator
from det_heads.assigners import Assignment, MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.conv_norm import ConvGN, RoIGroupNorm
from det_heads.conventions import MMDET_V06, TORCHVISION, Conventions
from det_heads.dense import ProposalConfig, RetinaHead, RPNHead, SSDHead
from det_heads.fpn import FPN
from det_heads.losses import CrossEntropyLoss, FocalLoss, SmoothL1Loss
from det_heads.postprocess import NMSConfig, multiclass_nms
from det_heads.roi import (
    BBoxHead,
    CascadeRoIHead,
    MaskHead,
    StandardRoIHead,
    cascade_bbox_heads,
    mask_targets,
    paste_masks,
)
from det_heads.roi_extractor import RoIExtractor, boxes_to_rois
from det_heads.samplers import OHEMSampler, PseudoSampler, RandomSampler, SamplingResult

__all__ = [
    "FPN",
    "MMDET_V06",
    "TORCHVISION",
    "AnchorGenerator",
    "Assignment",
    "BBoxHead",
    "CascadeRoIHead",
    "ConvGN",
    "Conventions",
    "CrossEntropyLoss",
    "DeltaXYWHCoder",
    "FocalLoss",
    "MaskHead",
    "MaxIoUAssigner",
    "NMSConfig",
    "OHEMSampler",
    "ProposalConfig",
    "PseudoSampler",
    "RPNHead",
    "RandomSampler",
    "RetinaAnchorGenerator",
    "RetinaHead",
    "RoIExtractor",
    "RoIGroupNorm",
    "SSDAnchorGenerator",
    "SSDHead",
    "SamplingResult",
    "SmoothL1Loss",
    "StandardRoIHead",
    "boxes_to_rois",
    "cascade_bbox_heads",
    "mask_targets",
    "multiclass_nms",
    "paste_masks",
]
