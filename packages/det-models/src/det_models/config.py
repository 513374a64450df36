"""Typed model configs: what to build for each zoo row, as frozen dataclasses.

Defaults are the 2019 (mmdetection v0.6) FPN configs; the zoo sets the fields that differ
per row. `replace_path` changes one field by dotted path, as the CLI's `--set` does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from det_heads import NMSConfig, ProposalConfig
from det_heads.conventions import DET, PRESETS, Conventions

if TYPE_CHECKING:  # the zoo package imports this module, so only for type checkers
    from det_models.zoo.settings import DataConfig, ScheduleConfig

FAMILIES = (
    "rpn",
    "fast_rcnn",
    "faster_rcnn",
    "mask_rcnn",
    "retinanet",
    "cascade_rcnn",
    "cascade_mask_rcnn",
    "ssd",
)
ROI_POOLS = ("align", "dpool", "mdpool")
# The 2019 two-stage configs: 2000 proposals per image feed the RoI head in training, 1000
# at test time; R-CNN / RetinaNet test NMS.
TRAIN_PROPOSALS = ProposalConfig(nms_pre=2000, nms_post=2000, max_num=2000)
TEST_PROPOSALS = ProposalConfig()
DEFAULT_NMS = NMSConfig()
# Box conventions by name, as the command lines take them (--set model.conventions=NAME).
CONVENTION_PRESETS = PRESETS


@dataclass(frozen=True)
class BackboneConfig:
    """Arguments of det_backbones.build_backbone.

    Attributes:
        arch: det-backbones name ("r50", "r101-caffe", "x101-64x4d", "vgg16-ssd300", ...).
        style: "pytorch" or "caffe"; None keeps the arch's own (the "-caffe" names are caffe).
        norm: "FrozenBN", "BN", "SyncBN" or "GN". The VGG16 of SSD has no norm layers
            under the default "FrozenBN"; "BN" puts a BatchNorm after each of its convs.
        norm_eval: keep BN statistics frozen in train mode.
        frozen_stages: -1 none, 0 the stem, k the stem and stages 1..k.
        dcn: None, "dconv" or "mdconv" in the stages of stage_with_dcn.
        stage_with_dcn: one flag per stage (c2..c5).
        deform_groups: offset groups of the deformable convs.
        base_channels: ResNet stem width or VGG conv1 width (64; smaller for a slim network
            trained from scratch).
    """

    arch: str
    style: str | None = None
    norm: str = "FrozenBN"
    norm_eval: bool = True
    frozen_stages: int = 1
    dcn: str | None = None
    stage_with_dcn: tuple[bool, bool, bool, bool] = (False, False, False, False)
    deform_groups: int = 1
    base_channels: int = 64


@dataclass(frozen=True)
class NeckConfig:
    """The FPN.

    Attributes:
        out_channels: channels of every level.
        num_outs: levels out (5: P2..P6, or P3..P7 for RetinaNet).
        extra: "maxpool" (P6 by max-pool) or "conv_on_input" (RetinaNet's P6/P7 convs).
        start_level: first backbone map used (1 for RetinaNet: C3).
        norm: None or "GN" (GroupNorm after every conv).
        relu_before_extra: ReLU before the second extra conv (torchvision's RetinaNet).
    """

    out_channels: int = 256
    num_outs: int = 5
    extra: str = "maxpool"
    start_level: int = 0
    norm: str | None = None
    relu_before_extra: bool = False


@dataclass(frozen=True)
class RPNConfig:
    """The RPN head.

    Attributes:
        feat_channels: channels of the shared 3x3 conv.
        anchor_scales, anchor_ratios, anchor_strides: the anchors.
        train_proposals: proposals fed to the RoI head in training.
        test_proposals: proposals at test time.
    """

    feat_channels: int = 256
    anchor_scales: tuple[float, ...] = (8.0,)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_strides: tuple[int, ...] = (4, 8, 16, 32, 64)
    train_proposals: ProposalConfig = TRAIN_PROPOSALS
    test_proposals: ProposalConfig = TEST_PROPOSALS


@dataclass(frozen=True)
class RoIConfig:
    """The second stage: RoI extraction, box head(s), optional mask head(s).

    Attributes:
        pool: "align" (RoIAlign), "dpool" or "mdpool" (deformable RoI pooling, box branch).
        roi_size, mask_roi_size: pooled sizes of the box and mask branches.
        sampling_ratio: RoIAlign samples per bin side.
        strides: strides of the levels RoIs are pooled from.
        num_convs, num_fcs, conv_channels, fc_channels: box head layers (2 FCs; GN: 4 convs
            and 1 FC).
        norm: None or "GN" for the box head's convs and the mask head.
        with_mask: whether there is a mask branch.
        mask_num_convs: 3x3 convs of the mask head.
        num_stages: 1 (standard) or 3 (Cascade R-CNN).
        cascade_ious, stage_weights: per stage IoU thresholds and loss weights (cascade).
        nms: test-time multiclass NMS.
        sample_num: RoIs sampled per image for the training loss (a quarter at most
            positive, ground truth included); the zoo's 512.
    """

    pool: str = "align"
    roi_size: int = 7
    mask_roi_size: int = 14
    sampling_ratio: int = 2
    strides: tuple[int, ...] = (4, 8, 16, 32)
    num_convs: int = 0
    num_fcs: int = 2
    conv_channels: int = 256
    fc_channels: int = 1024
    norm: str | None = None
    with_mask: bool = False
    mask_num_convs: int = 4
    num_stages: int = 1
    cascade_ious: tuple[float, ...] = (0.5, 0.6, 0.7)
    stage_weights: tuple[float, ...] = (1.0, 0.5, 0.25)
    nms: NMSConfig = DEFAULT_NMS
    sample_num: int = 512


@dataclass(frozen=True)
class DenseHeadConfig:
    """The single-stage head.

    Attributes:
        kind: "retina" or "ssd".
        stacked_convs, feat_channels: RetinaNet's towers.
        octave_base_scale: RetinaNet's smallest anchor on each level, in strides (4: 32
            pixels on P3, as in the zoo).
        input_size: SSD's input side (300 or 512).
        basesize_ratio_range: SSD anchor sizes as fractions of input_size.
        nms: test-time multiclass NMS (None: the head's default).
        nms_pre: RetinaNet's candidates per level before NMS (the 2019 configs' 1000).
    """

    kind: str = "retina"
    stacked_convs: int = 4
    feat_channels: int = 256
    octave_base_scale: float = 4.0
    input_size: int = 300
    basesize_ratio_range: tuple[float, float] | None = None
    nms: NMSConfig | None = None
    nms_pre: int = 1000


@dataclass(frozen=True)
class ModelConfig:
    """A whole detector.

    Attributes:
        family: one of FAMILIES.
        num_classes: object classes (80 for COCO, 20 for VOC).
        backbone: the backbone.
        neck: the FPN, or None (SSD).
        rpn: the RPN, or None (Fast R-CNN, single-stage).
        roi: the second stage, or None (RPN, single-stage).
        dense: the single-stage head, or None.
        conventions: the box arithmetic (det_heads.conventions): DET for training, MMDET_V06
            for the 2019 zoo's checkpoints, TORCHVISION for torchvision's weights.
    """

    family: str
    num_classes: int
    backbone: BackboneConfig
    neck: NeckConfig | None = field(default_factory=NeckConfig)
    rpn: RPNConfig | None = field(default_factory=RPNConfig)
    roi: RoIConfig | None = None
    dense: DenseHeadConfig | None = None
    conventions: Conventions = DET


@dataclass(frozen=True)
class ZooConfig:
    """Everything a zoo row's original config set: model, data and schedule.

    Attributes:
        key: (model, backbone, schedule, variant) of the row.
        model: what to build.
        data: dataset and transforms.
        schedule: optimiser and learning-rate schedule.
    """

    key: tuple[str, str, str, str | None]
    model: ModelConfig
    data: DataConfig
    schedule: ScheduleConfig


def replace_path(config: Any, path: str, value: Any) -> Any:
    """A copy of a (nested) frozen dataclass with the field at a dotted path replaced.

    Args:
        config: a dataclass instance, e.g. a ZooConfig.
        path: dotted field names, e.g. "model.rpn.test_proposals.nms_thr".
        value: the new value.

    Returns:
        The new config; config itself is unchanged.
    """
    head, _, rest = path.partition(".")
    if not dataclasses.is_dataclass(config):
        raise ValueError(f"replace_path: cannot descend into {type(config).__name__} at {path!r}")
    names = [f.name for f in dataclasses.fields(config)]
    if head not in names:
        raise ValueError(
            f"replace_path: {type(config).__name__} has no field {head!r}; fields: "
            + ", ".join(names)
        )
    if rest:
        inner = getattr(config, head)
        if inner is None:
            raise ValueError(f"replace_path: {type(config).__name__}.{head} is None")
        value = replace_path(inner, rest, value)
    return dataclasses.replace(config, **{head: value})
