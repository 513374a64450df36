"""Dense (per-anchor) heads: RPN, RetinaNet, SSD."""

from det_heads.dense.retina_head import RetinaHead
from det_heads.dense.rpn_head import ProposalConfig, RPNHead
from det_heads.dense.ssd_head import SSDHead

__all__ = ["ProposalConfig", "RPNHead", "RetinaHead", "SSDHead"]
