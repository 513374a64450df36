"""det-heads: FPN, anchors, box coders, assigners, samplers, losses, dense and RoI heads."""

from det_heads.anchors import AnchorGenerator, RetinaAnchorGenerator, SSDAnchorGenerator
from det_heads.assigners import Assignment, MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.fpn import FPN
from det_heads.losses import CrossEntropyLoss, FocalLoss, SmoothL1Loss
from det_heads.postprocess import NMSConfig, multiclass_nms
from det_heads.roi_extractor import RoIExtractor, boxes_to_rois
from det_heads.samplers import OHEMSampler, PseudoSampler, RandomSampler, SamplingResult

__all__ = [
    "FPN",
    "AnchorGenerator",
    "Assignment",
    "CrossEntropyLoss",
    "DeltaXYWHCoder",
    "FocalLoss",
    "MaxIoUAssigner",
    "NMSConfig",
    "OHEMSampler",
    "PseudoSampler",
    "RandomSampler",
    "RetinaAnchorGenerator",
    "RoIExtractor",
    "SSDAnchorGenerator",
    "SamplingResult",
    "SmoothL1Loss",
    "boxes_to_rois",
    "multiclass_nms",
]
