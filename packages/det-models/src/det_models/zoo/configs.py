"""The full config of each zoo row (`zoo.get`) and the model built from it (`zoo.build`).

Model settings follow the mmdetection v0.6 configs behind the 2019 zoo: FPN R-CNNs with
RoIAlign 7x7 / 14x14; RetinaNet's FPN from C3 with P6/P7 convs on C5; the "gn" rows with
GroupNorm in backbone, FPN, a 4conv1fc box head and the mask head (both "gn" rows pytorch
style, as their v0.6.0 configs: the Detectron-converted "gn" weights differ only in taking
caffe-normalised BGR input); the DCN rows
with (modulated) deformable convs in stages c3-c5, one offset group (also for X-101-32x4d),
or deformable RoI pooling in the box branch; SSD with VGG16 and no neck. Each backbone names
the ImageNet weights its config started from (`BackboneConfig.pretrained`); building a model
loads none (det_models.init_backbone does).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from det_models.builder import build_model
from det_models.config import (
    CASCADE_STAGES_2019,
    BackboneConfig,
    DenseHeadConfig,
    ModelConfig,
    NeckConfig,
    RoIConfig,
    RoIStageConfig,
    RPNConfig,
    ZooConfig,
    replace_path,
)
from det_models.zoo.entry import ZooEntry
from det_models.zoo.lookup import entry as find_entry

# Classes of the zoo's datasets (no background).
NUM_CLASSES = {"coco": 80, "voc0712": 20}
GN_VARIANTS = frozenset({"gn", "gn-contrib"})
DCN_VARIANTS = {"dconv-c3-c5": "dconv", "mdconv-c3-c5": "mdconv"}
POOL_VARIANTS = frozenset({"dpool", "mdpool"})
# SSD on VOC used larger smallest anchors than on COCO (the ssd*_voc configs).
SSD_VOC_BASESIZE = {300: (0.2, 0.9), 512: (0.15, 0.9)}
# The ImageNet weights each row's backbone started from: the v0.6.0 configs' `pretrained`
# (det_backbones.SOURCES says where each file is and how it loads). Deformable-conv and
# deformable-pooling rows start from their base backbone's weights.
PRETRAINED = {
    "r50": "modelzoo://resnet50",
    "r101": "modelzoo://resnet101",
    "r50-caffe": "open-mmlab://resnet50_caffe",
    "r101-caffe": "open-mmlab://resnet101_caffe",
    "x101-32x4d": "open-mmlab://resnext101_32x4d",
    "x101-64x4d": "open-mmlab://resnext101_64x4d",
    "vgg16": "open-mmlab://vgg16_caffe",
}
# The GN rows (configs/gn/): Detectron's GN ResNets ("gn") or a contributed one ("gn-contrib").
GN_PRETRAINED = {
    ("gn", "r50"): "open-mmlab://detectron/resnet50_gn",
    ("gn", "r101"): "open-mmlab://detectron/resnet101_gn",
    ("gn-contrib", "r50"): "open-mmlab://contrib/resnet50_gn",
}


def pretrained_source(row: ZooEntry) -> str:
    """The URI of the ImageNet weights a zoo row's backbone starts from (its 2019 config's
    `pretrained`), e.g. "open-mmlab://resnet50_caffe"."""
    if row.variant in GN_VARIANTS:
        return GN_PRETRAINED[(row.variant, row.backbone)]
    return PRETRAINED[row.backbone]


def model_config(row: ZooEntry) -> ModelConfig:
    """The ModelConfig of a zoo row.

    Args:
        row: the ZooEntry (from zoo.entry).

    Returns:
        The ModelConfig with the row's family, classes, backbone, neck and heads.
    """
    model, variant = row.model, row.variant
    num_classes = NUM_CLASSES[row.data.dataset]
    if model in ("ssd300", "ssd512"):
        size = int(model[3:])
        return ModelConfig(
            family="ssd",
            num_classes=num_classes,
            backbone=BackboneConfig(arch=row.backbone_arch, pretrained=pretrained_source(row)),
            neck=None,
            rpn=None,
            dense=DenseHeadConfig(
                kind="ssd",
                input_size=size,
                basesize_ratio_range=SSD_VOC_BASESIZE[size] if variant == "voc" else None,
            ),
        )
    gn = variant in GN_VARIANTS
    backbone = BackboneConfig(
        arch=row.backbone_arch,
        norm="GN" if gn else "FrozenBN",
        dcn=DCN_VARIANTS.get(variant),
        stage_with_dcn=(False, True, True, True) if variant in DCN_VARIANTS else (False,) * 4,
        pretrained=pretrained_source(row),
    )
    if model == "retinanet":
        return ModelConfig(
            family="retinanet",
            num_classes=num_classes,
            backbone=backbone,
            neck=NeckConfig(extra="conv_on_input", start_level=1),
            rpn=None,
            dense=DenseHeadConfig(kind="retina"),
        )
    neck = NeckConfig(norm="GN" if gn else None)
    if model == "rpn":
        return ModelConfig(
            family="rpn",
            num_classes=1,
            backbone=backbone,
            neck=neck,
            rpn=RPNConfig(),
        )
    roi = RoIConfig(
        pool=variant if variant in POOL_VARIANTS else "align",
        num_convs=4 if gn else 0,
        num_fcs=1 if gn else 2,
        norm="GN" if gn else None,
        with_mask=row.data.with_mask,
        stages=CASCADE_STAGES_2019 if model.startswith("cascade") else (RoIStageConfig(),),
    )
    return ModelConfig(
        family=model,
        num_classes=num_classes,
        backbone=backbone,
        neck=neck,
        rpn=None if model == "fast_rcnn" else RPNConfig(),
        roi=roi,
    )


def get(model: str, backbone: str, schedule: str, variant: str | None = None) -> ZooConfig:
    """The full config of a zoo row: model, data and schedule settings.

    Args:
        model, backbone, schedule, variant: the row's key (see zoo.names()).

    Returns:
        ZooConfig(key, model, data, schedule).

    Raises:
        ValueError: no row has this key; the message lists the valid choices.
    """
    row = find_entry(model, backbone, schedule, variant)
    return ZooConfig(
        key=row.key, model=model_config(row), data=row.data, schedule=row.schedule_config
    )


def build(
    model: str,
    backbone: str,
    schedule: str,
    variant: str | None = None,
    num_classes: int | None = None,
    **overrides: Any,
) -> nn.Module:
    """The detector of a zoo row, freshly initialised.

    Args:
        model, backbone, schedule, variant: the row's key (see zoo.names()).
        num_classes: object classes; default the row's dataset's (80 COCO, 20 VOC).
        overrides: ModelConfig fields by dotted path, written with "__" for the dots, e.g.
            rpn__test_proposals=ProposalConfig(...) or backbone__frozen_stages=-1.

    Returns:
        The detector module (RPN, FastRCNN, FasterRCNN, MaskRCNN, CascadeRCNN, RetinaNet, SSD).
    """
    config = get(model, backbone, schedule, variant).model
    if num_classes is not None:
        if config.family == "rpn":
            raise ValueError("num_classes: an RPN has no classes; leave it None")
        config = replace_path(config, "num_classes", num_classes)
    for path, value in overrides.items():
        config = replace_path(config, path.replace("__", "."), value)
    return build_model(config)
