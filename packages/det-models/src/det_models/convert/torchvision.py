"""torchvision's detection models (v1 ResNet-50-FPN weights) -> our models' keys.

torchvision key -> det-models key:
- backbone.body.*
    -> backbone.*
- backbone.fpn.inner_blocks.N.0 / layer_blocks.N.0
    -> neck.lateral_convs.N / neck.output_convs.N
- backbone.fpn.extra_blocks.p6 / p7 (RetinaNet)
    -> neck.extra_convs.0 / 1
- rpn.head.conv.0.0 / cls_logits / bbox_pred
    -> rpn.conv / rpn.cls / rpn.reg
- roi_heads.box_head.fc6 / fc7
    -> roi_head.bbox_head.fcs.0 / 1
- roi_heads.box_predictor.cls_score / bbox_pred
    -> roi_head.bbox_head.cls / reg
- roi_heads.mask_head.N.0 / mask_predictor.conv5_mask / mask_fcn_logits
    -> roi_head.mask_head.convs.N / deconv / logits
- head.classification_head.conv.N.0 / cls_logits
    -> head.cls_tower.2N / head.cls
- head.regression_head.conv.N.0 / bbox_reg
    -> head.reg_tower.2N / head.reg

torchvision's 91 outputs are index 0 = background followed by COCO category ids 1..90 (ten of
them unused); ours are 90 classes, label i being category id i + 1, with background last for
the softmax heads. RetinaNet's sigmoid column 0 (never trained as a class) is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from det_heads import TORCHVISION, NMSConfig, ProposalConfig
from det_models.config import (
    AssignerConfig,
    BackboneConfig,
    DenseHeadConfig,
    ModelConfig,
    NeckConfig,
    RoIConfig,
    RPNConfig,
)
from det_models.convert.common import Converted, background_last, drop_first, rename, unwrap

TORCHVISION_MODELS = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn")
# 91 torchvision outputs less the background / unused index 0.
TORCHVISION_CLASSES = 90
_RETINA_ANCHORS = 9
# torchvision's test-time settings (rpn.py RegionProposalNetwork, roi_heads.py RoIHeads,
# retinanet.py RetinaNet defaults): 1000 proposals, boxes smaller than 1e-3 (RPN) or 1e-2
# (box head) dropped; RetinaNet's 1000 candidates per level and 300 detections.
_RPN_TEST = ProposalConfig(nms_pre=1000, nms_post=1000, max_num=1000, nms_thr=0.7, min_size=1e-3)
_ROI_NMS = NMSConfig(score_thr=0.05, iou_thr=0.5, max_per_img=100, min_size=1e-2)
_RETINA_NMS = NMSConfig(score_thr=0.05, iou_thr=0.5, max_per_img=300)
# torchvision's training settings (faster_rcnn.py FasterRCNN and retinanet.py RetinaNet
# defaults, rpn.py RegionProposalNetwork.compute_loss, roi_heads.py fastrcnn_loss):
# 2000 proposals per level and image; every anchor trained on (no border check); low-quality
# matches for the RPN and RetinaNet (det_utils.Matcher(allow_low_quality_matches=True): a
# gt's best anchors at any IoU above 0); smooth L1 beta 1/9 in both R-CNN stages; RetinaNet's
# L1 box loss (beta 0), normalised per image. The thresholds and sampler sizes are the 2019
# configs' too.
_RPN_TRAIN = ProposalConfig(nms_pre=2000, nms_post=2000, max_num=2000, nms_thr=0.7, min_size=1e-3)
_RPN_ASSIGNER = AssignerConfig(0.7, 0.3, 0.0)
_RETINA_ASSIGNER = AssignerConfig(0.5, 0.4, 0.0)
_SMOOTH_L1_BETA = 1.0 / 9.0

_FPN = re.compile(r"^backbone\.fpn\.(inner_blocks|layer_blocks)\.(\d+)\.(?:0\.)?(weight|bias)$")
_TOWER = re.compile(r"^head\.(classification_head|regression_head)\.conv\.(\d+)\.0\.(.+)$")
_MASK_CONV = re.compile(r"^roi_heads\.mask_head\.(\d+)\.0\.(.+)$")
_RENAMES = {
    "backbone.fpn.extra_blocks.p6.": "neck.extra_convs.0.",
    "backbone.fpn.extra_blocks.p7.": "neck.extra_convs.1.",
    "rpn.head.conv.0.0.": "rpn.conv.",
    "rpn.head.cls_logits.": "rpn.cls.",
    "rpn.head.bbox_pred.": "rpn.reg.",
    "roi_heads.box_head.fc6.": "roi_head.bbox_head.fcs.0.",
    "roi_heads.box_head.fc7.": "roi_head.bbox_head.fcs.1.",
    "roi_heads.mask_predictor.conv5_mask.": "roi_head.mask_head.deconv.",
    "head.regression_head.bbox_reg.": "head.reg.",
}


def torchvision_config(model_name: str) -> ModelConfig:
    """Our ModelConfig of a torchvision detection model (90 classes, R-50 pytorch style).

    Args:
        model_name: one of TORCHVISION_MODELS.

    Returns:
        The config, with torchvision's box conventions (det_heads.TORCHVISION), test-time
        and training settings; det_models.builder.build_model(config) makes the model that
        from_torchvision's output loads into and that gives torchvision's detections and
        training losses.
    """
    _check_name(model_name)
    backbone = BackboneConfig(arch="r50")
    if model_name == "retinanet_resnet50_fpn":
        # torchvision makes P6 from P5 (not C5) and applies a ReLU before P7.
        neck = NeckConfig(extra="conv_on_output", start_level=1, relu_before_extra=True)
        return ModelConfig(
            family="retinanet",
            num_classes=TORCHVISION_CLASSES,
            backbone=backbone,
            neck=neck,
            rpn=None,
            dense=DenseHeadConfig(
                kind="retina",
                nms=_RETINA_NMS,
                nms_pre=1000,
                assigner=_RETINA_ASSIGNER,
                box_loss_beta=0.0,
                allowed_border=-1.0,
                loss_normalizer="image",
            ),
            conventions=TORCHVISION,
        )
    mask = model_name == "maskrcnn_resnet50_fpn"
    return ModelConfig(
        family="mask_rcnn" if mask else "faster_rcnn",
        num_classes=TORCHVISION_CLASSES,
        backbone=backbone,
        rpn=RPNConfig(
            train_proposals=_RPN_TRAIN,
            test_proposals=_RPN_TEST,
            assigner=_RPN_ASSIGNER,
            allowed_border=-1.0,
            box_loss_beta=_SMOOTH_L1_BETA,
        ),
        roi=RoIConfig(with_mask=mask, nms=_ROI_NMS, box_loss_beta=_SMOOTH_L1_BETA),
        conventions=TORCHVISION,
    )


def from_torchvision(state_dict: Mapping, model_name: str) -> Converted:
    """Converts a torchvision detection model's state dict.

    Args:
        state_dict: model.state_dict() of a torchvision model (or a checkpoint holding one).
        model_name: one of TORCHVISION_MODELS.

    Returns:
        Converted(state_dict with our keys, unused source keys); it loads strictly into
        build_model(torchvision_config(model_name)).
    """
    _check_name(model_name)

    def rule(key: str, value: Tensor) -> tuple[str, Tensor] | None:
        if key.startswith("backbone.body."):
            return "backbone." + key.removeprefix("backbone.body."), value
        if m := _FPN.match(key):
            name = "lateral_convs" if m[1] == "inner_blocks" else "output_convs"
            return f"neck.{name}.{m[2]}.{m[3]}", value
        if m := _TOWER.match(key):
            tower = "cls_tower" if m[1] == "classification_head" else "reg_tower"
            return f"head.{tower}.{2 * int(m[2])}.{m[3]}", value
        if m := _MASK_CONV.match(key):
            return f"roi_head.mask_head.convs.{m[1]}.{m[2]}", value
        for source, target in _RENAMES.items():
            if key.startswith(source):
                return target + key[len(source) :], value
        suffix = key.rpartition(".")[2]
        if key.startswith("roi_heads.box_predictor.cls_score."):
            return f"roi_head.bbox_head.cls.{suffix}", background_last(value)
        if key.startswith("roi_heads.box_predictor.bbox_pred."):
            return f"roi_head.bbox_head.reg.{suffix}", drop_first(value, 4)
        if key.startswith("roi_heads.mask_predictor.mask_fcn_logits."):
            return f"roi_head.mask_head.logits.{suffix}", drop_first(value, 1)
        if key.startswith("head.classification_head.cls_logits."):
            return f"head.cls.{suffix}", drop_first(value, 1, _RETINA_ANCHORS)
        return None

    converted = rename(unwrap(state_dict), rule)
    converted.conventions = TORCHVISION
    return converted


def _check_name(model_name: str) -> None:
    if model_name not in TORCHVISION_MODELS:
        raise ValueError(
            f"model_name must be one of {', '.join(TORCHVISION_MODELS)}; got {model_name!r}"
        )
