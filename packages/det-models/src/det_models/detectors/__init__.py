"""The detector families, each composed from a backbone, a neck and heads given as objects."""

from det_models.detectors.rpn import RPN
from det_models.detectors.single_stage import SSD, RetinaNet
from det_models.detectors.two_stage import CascadeRCNN, FasterRCNN, FastRCNN, MaskRCNN

__all__ = ["RPN", "SSD", "CascadeRCNN", "FastRCNN", "FasterRCNN", "MaskRCNN", "RetinaNet"]
