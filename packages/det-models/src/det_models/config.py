"""Every config type, as frozen dataclasses: the model, its data and schedule, a zoo row and a run.

- `ModelConfig` (with `BackboneConfig`, `NeckConfig`, `RPNConfig`, `RoIConfig`,
  `DenseHeadConfig`): what to build. Defaults are the 2019 (mmdetection v0.6) FPN configs;
  the zoo sets the fields that differ per row (det_models.zoo.configs).
- `DataConfig` (with `Normalize`, `SSDAugment`) and `ScheduleConfig`: the data pipeline and
  the optimiser and learning-rate schedule (the rules giving each zoo row its values are in
  det_models.zoo.settings).
- `ZooConfig`: a zoo row's model, data and schedule; `RunConfig`: what a training run used,
  stored in its checkpoints as plain data (`to_plain` / `from_plain`), so that any checkpoint
  rebuilds its model and data (det_models.checkpoint.model_from_checkpoint).
- `replace_path` changes one field by dotted path; `apply_overrides` applies the command
  line's ``--set KEY=VALUE`` items with it.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from det_heads import NMSConfig, ProposalConfig
from det_heads.conventions import DET, PRESETS, Conventions

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
# Every RPN and R-CNN config of v0.6.0 makes 2000 proposals per level and image, in training
# (they feed the RoI head) and at test time (test_cfg.rpn nms_pre = nms_post = max_num =
# 2000; the 1000 of later configs came after). R-CNN / RetinaNet test NMS: NMSConfig().
PROPOSALS_2019 = ProposalConfig(nms_pre=2000, nms_post=2000, max_num=2000)
DEFAULT_NMS = NMSConfig()
# Box conventions by name, as the command lines take them (--set model.conventions=NAME).
CONVENTION_PRESETS = PRESETS


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


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
        pretrained: the weights the backbone starts training from: a URI of
            det_backbones.SOURCES as the 2019 config named it ("modelzoo://resnet50",
            "open-mmlab://resnet50_caffe", ...), a file path, or None (random initialisation,
            as the recipes that train from scratch). Read by det_models.init_backbone and
            the train command, never by build_model.
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
    pretrained: str | None = None


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
class AssignerConfig:
    """A MaxIoUAssigner's thresholds (the 2019 configs' ``train_cfg.*.assigner``).

    Attributes:
        pos_iou_thr: boxes whose best IoU with a ground truth is at least this are positive.
        neg_iou_thr: boxes whose best IoU is below this are negative; or a (lo, hi) pair.
        min_pos_iou: a ground truth's best box is positive when their IoU reaches this.
        gt_max_assign_all: a ground truth takes every box tied for its best IoU.
        ignore_iof_thr: boxes covered by a crowd box by more than this share of their area
            are ignored; -1: off (every 2019 config).
    """

    pos_iou_thr: float
    neg_iou_thr: float | tuple[float, float]
    min_pos_iou: float = 0.0
    gt_max_assign_all: bool = True
    ignore_iof_thr: float = -1.0


@dataclass(frozen=True)
class SamplerConfig:
    """A RandomSampler's sizes (the 2019 configs' ``train_cfg.*.sampler``).

    Attributes:
        num: boxes sampled per image.
        pos_fraction: largest share of positives among them.
        neg_pos_ub: at most this many negatives per positive; -1: no bound.
        add_gt_as_proposals: the ground-truth boxes join the candidates (R-CNN stages).
    """

    num: int
    pos_fraction: float
    neg_pos_ub: float = -1.0
    add_gt_as_proposals: bool = False

    def __post_init__(self) -> None:
        if self.num <= 0:
            raise ValueError(f"SamplerConfig.num must be > 0, got {self.num}")
        if not 0.0 <= self.pos_fraction <= 1.0:
            raise ValueError(
                f"SamplerConfig.pos_fraction must be in [0, 1], got {self.pos_fraction}"
            )


@dataclass(frozen=True)
class RPNConfig:
    """The RPN head, with its training settings (2019: ``train_cfg.rpn``).

    Attributes:
        feat_channels: channels of the shared 3x3 conv.
        anchor_scales, anchor_ratios, anchor_strides: the anchors.
        train_proposals: proposals fed to the RoI head in training.
        test_proposals: proposals at test time.
        assigner: anchor assignment (0.7 / 0.3 / min_pos 0.3).
        sampler: anchors sampled per image (256 at half positives, no gt added).
        allowed_border: pixels an anchor may cross the image border by to be trained on
            (0: inside the image; -1: every anchor).
        pos_weight: objectness weight of a positive anchor; -1: 1.
        target_stds: the box coder's standard deviations.
        box_loss_beta: smooth L1 beta of the box loss (1/9).
        cls_loss_weight, box_loss_weight: multipliers of the two losses.
    """

    feat_channels: int = 256
    anchor_scales: tuple[float, ...] = (8.0,)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_strides: tuple[int, ...] = (4, 8, 16, 32, 64)
    train_proposals: ProposalConfig = PROPOSALS_2019
    test_proposals: ProposalConfig = PROPOSALS_2019
    assigner: AssignerConfig = AssignerConfig(0.7, 0.3, 0.3)
    sampler: SamplerConfig = SamplerConfig(256, 0.5, add_gt_as_proposals=False)
    allowed_border: float = 0.0
    pos_weight: float = -1.0
    target_stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    box_loss_beta: float = 1.0 / 9.0
    cls_loss_weight: float = 1.0
    box_loss_weight: float = 1.0


@dataclass(frozen=True)
class RoIStageConfig:
    """Training settings of one R-CNN stage (2019: ``train_cfg.rcnn``; a list of three for
    Cascade R-CNN, with ``stage_loss_weights``).

    Attributes:
        assigner: proposal assignment (0.5 / 0.5 / min_pos 0.5; Cascade 0.5, 0.6, 0.7).
        sampler: RoIs sampled per image (512 at a quarter positives, gt added).
        target_stds: the stage's box coder standard deviations.
        loss_weight: multiplier of the stage's losses (Cascade 1, 0.5, 0.25).
        pos_weight: classification weight of a positive RoI; -1: 1.
    """

    assigner: AssignerConfig = AssignerConfig(0.5, 0.5, 0.5)
    sampler: SamplerConfig = SamplerConfig(512, 0.25, add_gt_as_proposals=True)
    target_stds: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
    loss_weight: float = 1.0
    pos_weight: float = -1.0


# Cascade R-CNN's three stages (2019 cascade_rcnn_r50_fpn_1x.py: train_cfg.rcnn,
# stage_loss_weights, and each bbox head's target_stds).
CASCADE_STAGES_2019 = tuple(
    RoIStageConfig(assigner=AssignerConfig(iou, iou, iou), target_stds=stds, loss_weight=weight)
    for iou, stds, weight in (
        (0.5, (0.1, 0.1, 0.2, 0.2), 1.0),
        (0.6, (0.05, 0.05, 0.1, 0.1), 0.5),
        (0.7, (0.033, 0.033, 0.067, 0.067), 0.25),
    )
)


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
        nms: test-time multiclass NMS.
        stages: the training settings of each stage: one (Faster / Mask R-CNN) or three
            (Cascade R-CNN: CASCADE_STAGES_2019); their number is the number of stages.
        box_loss_beta: smooth L1 beta of the box loss (1).
        cls_loss_weight, box_loss_weight, mask_loss_weight: multipliers of the losses
            (before a stage's loss_weight).
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
    nms: NMSConfig = DEFAULT_NMS
    stages: tuple[RoIStageConfig, ...] = (RoIStageConfig(),)
    box_loss_beta: float = 1.0
    cls_loss_weight: float = 1.0
    box_loss_weight: float = 1.0
    mask_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("RoIConfig.stages must hold at least one RoIStageConfig")

    @property
    def num_stages(self) -> int:
        """1 for Faster / Mask R-CNN, 3 for Cascade R-CNN."""
        return len(self.stages)


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
        assigner: anchor assignment; None: the kind's 2019 setting (RetinaNet 0.5 / 0.4 /
            min_pos 0; SSD 0.5 / 0.5 / 0, a ground truth taking only its first best anchor).
        target_stds: the box coder's standard deviations; None: the kind's (RetinaNet 1,
            SSD (0.1, 0.1, 0.2, 0.2)).
        box_loss_beta: smooth L1 beta; None: the kind's (RetinaNet 0.11, SSD 1).
        allowed_border: pixels an anchor may cross the border by (-1: every anchor).
        pos_weight: RetinaNet: classification weight of a positive anchor; -1: 1.
        focal_gamma, focal_alpha: RetinaNet's focal loss (2, 0.25).
        loss_normalizer: RetinaNet: "batch" (the 2019 code: losses divided by the batch's
            positives) or "image" (torchvision: by each image's, then averaged).
        neg_pos_ratio: SSD: hard negatives mined per positive (3).

    The None settings are filled in from `kind` when the config is made, so a stored or
    printed config always holds the values used.
    """

    kind: str = "retina"
    stacked_convs: int = 4
    feat_channels: int = 256
    octave_base_scale: float = 4.0
    input_size: int = 300
    basesize_ratio_range: tuple[float, float] | None = None
    nms: NMSConfig | None = None
    nms_pre: int = 1000
    assigner: AssignerConfig | None = None
    target_stds: tuple[float, float, float, float] | None = None
    box_loss_beta: float | None = None
    allowed_border: float = -1.0
    pos_weight: float = -1.0
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    loss_normalizer: str = "batch"
    neg_pos_ratio: float = 3.0

    def __post_init__(self) -> None:
        _check_choice("DenseHeadConfig.kind", self.kind, tuple(DENSE_TRAIN_2019))
        _check_choice("DenseHeadConfig.loss_normalizer", self.loss_normalizer, ("batch", "image"))
        for name, value in DENSE_TRAIN_2019[self.kind].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)


# The single-stage heads' 2019 training settings that differ by kind (retinanet_r50_fpn_1x.py
# and ssd300_coco.py: train_cfg, target_stds, smoothl1_beta).
DENSE_TRAIN_2019: dict[str, dict[str, Any]] = {
    "retina": {
        "assigner": AssignerConfig(0.5, 0.4, 0.0),
        "target_stds": (1.0, 1.0, 1.0, 1.0),
        "box_loss_beta": 0.11,
    },
    "ssd": {
        "assigner": AssignerConfig(0.5, 0.5, 0.0, gt_max_assign_all=False),
        "target_stds": (0.1, 0.1, 0.2, 0.2),
        "box_loss_beta": 1.0,
    },
}


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


# The momentum, weight decay and warmup below are those of every 2019 config.
_MOMENTUM = 0.9
_WARMUP_ITERS = 500
_WARMUP_RATIO = 1.0 / 3.0


@dataclass(frozen=True)
class ScheduleConfig:
    """Optimiser and learning-rate schedule: the zoo's SGD with step decay and linear warmup,
    or (for recipes such as the quickstart's) AdamW with warmup and cosine decay.

    Attributes:
        epochs: passes over the (possibly repeated) training set.
        lr_steps: epochs after which the learning rate is multiplied by `lr_gamma` ("step").
        lr: learning rate for the whole batch of `gpus * imgs_per_gpu` images.
        momentum: SGD momentum.
        weight_decay: L2 weight decay (SGD: every parameter; AdamW: decoupled, weights only).
        warmup: warmup policy: "linear" (every 2019 config), "constant", "exp", or None for
            no warmup.
        warmup_iters: iterations of warmup.
        warmup_ratio: learning-rate factor at the first warmup iteration.
        lr_gamma: factor applied at each step.
        grad_clip_norm: max L2 norm of all gradients, or None for no clipping.
        gpus: GPUs the released model was trained on.
        imgs_per_gpu: images per GPU per iteration.
        dataset_repeat: times the training set is repeated inside one epoch (SSD); `epochs`
            and `lr_steps` count epochs of the repeated set.
        optimizer: "sgd" (every zoo row) or "adamw".
        lr_policy: "step" (decay at `lr_steps`) or "cosine" (from `lr` down to
            `lr * final_lr_ratio` over the run; linear warmup over `warmup_iters`).
        max_iters: the run's length in iterations instead of `epochs`, or None.
        final_lr_ratio: "cosine": the last learning rate as a fraction of `lr`.
    """

    epochs: int
    lr_steps: tuple[int, ...]
    lr: float = 0.02
    momentum: float = _MOMENTUM
    weight_decay: float = 1e-4
    warmup: str | None = "linear"
    warmup_iters: int = _WARMUP_ITERS
    warmup_ratio: float = _WARMUP_RATIO
    lr_gamma: float = 0.1
    grad_clip_norm: float | None = 35.0
    gpus: int = 8
    imgs_per_gpu: int = 2
    dataset_repeat: int = 1
    optimizer: str = "sgd"
    lr_policy: str = "step"
    max_iters: int | None = None
    final_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        _check_choice("ScheduleConfig.optimizer", self.optimizer, ("sgd", "adamw"))
        _check_choice("ScheduleConfig.lr_policy", self.lr_policy, ("step", "cosine"))
        if self.max_iters is not None and self.max_iters <= 0:
            raise ValueError(f"ScheduleConfig.max_iters must be > 0 or None, got {self.max_iters}")

    @property
    def batch_size(self) -> int:
        """Images per iteration over all GPUs."""
        return self.gpus * self.imgs_per_gpu

    @property
    def total_epochs(self) -> int:
        """Passes over the original training set (epochs times the dataset repeat)."""
        return self.epochs * self.dataset_repeat


@dataclass(frozen=True)
class Normalize:
    """Per-channel image normalisation: (image - mean) / std, in the channel order given.

    Attributes:
        mean: per-channel mean, in the order of `to_rgb` (RGB if True, else BGR), 0-255 scale.
        std: per-channel standard deviation, same order and scale.
        to_rgb: whether images are converted to RGB before normalising (else kept BGR).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    to_rgb: bool


# ImageNet statistics of torchvision's pretrained weights.
PYTORCH_NORMALIZE = Normalize(
    mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb=True
)
# Detectron's caffe2 weights expect BGR with the mean removed and no scaling; the configs give
# the mean to four decimals (102.98, 115.95, 122.77 rounded).
CAFFE_NORMALIZE = Normalize(mean=(102.9801, 115.9465, 122.7717), std=(1.0, 1.0, 1.0), to_rgb=False)
# SSD's VGG16 weights: RGB with the mean removed and no scaling (ssd300/512 configs).
SSD_NORMALIZE = Normalize(mean=(123.675, 116.28, 103.53), std=(1.0, 1.0, 1.0), to_rgb=True)


@dataclass(frozen=True)
class SSDAugment:
    """SSD's extra training augmentation: photometric distortion, expand, IoU-constrained crop.

    Attributes:
        brightness_delta: max brightness shift, 0-255 scale.
        contrast_range: range of the contrast factor.
        saturation_range: range of the saturation factor.
        hue_delta: max hue shift, degrees.
        expand_ratio_range: range of the canvas-to-image size ratio when zooming out (the
            canvas is filled with the normalisation mean), or None for no zoom-out.
        min_ious: minimum IoU with a ground-truth box, one chosen per crop, or None for no
            crop.
        min_crop_size: smallest crop side as a fraction of the image side.
    """

    brightness_delta: int = 32
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18
    expand_ratio_range: tuple[float, float] | None = (1.0, 4.0)
    min_ious: tuple[float, ...] | None = (0.1, 0.3, 0.5, 0.7, 0.9)
    min_crop_size: float = 0.3


@dataclass(frozen=True)
class DataConfig:
    """Dataset and transforms of one zoo row (det_engine.data builds the pipeline from it,
    det_models.Detector does its test half).

    Training: SSD augmentation (if any), resize to `img_scale` (or one drawn from
    `train_scales`), flip with `flip_ratio`, normalise; batches padded to `size_divisor`.
    Testing: resize to `img_scale`, normalise, pad.

    Attributes:
        dataset: "coco" or "voc0712".
        train_sets: splits trained on: COCO set names ("train2017" reads
            annotations/instances_train2017.json and the train2017/ images), or VOC ones as
            "VOC<year> <image set>".
        test_set: split the reference figures were measured on, named the same way.
        img_scale: (long side, short side) limits in pixels when `keep_ratio`, else (w, h).
        keep_ratio: resize keeping the aspect ratio (else to exactly `img_scale`).
        flip_ratio: probability of a horizontal flip in training.
        normalize: pixel normalisation.
        size_divisor: pad the image's height and width to a multiple of this, or None.
        with_mask: whether instance masks are loaded (mask models).
        train_proposals: precomputed proposal file for training (Fast R-CNN), relative to
            the dataset root, or None.
        test_proposals: precomputed proposal file for testing, or None.
        num_max_proposals: proposals per image kept from a proposal file (its first ones).
        ssd_augment: SSD's extra augmentation, or None.
        train_scales: multi-scale training: scales to draw from (see `multiscale_mode`)
            instead of `img_scale`, or None.
        multiscale_mode: "value" (one of `train_scales`) or "range" (long and short side
            drawn uniformly between the smallest and largest of `train_scales`).
        legacy_resize: resize as the 2019 pipeline did (mmcv imrescale / imresize: bilinear
            without antialiasing on the 8-bit image, rounded to 8 bits; a keep-ratio scale
            factor is one number for both axes). Set for the zoo's released checkpoints;
            otherwise images are resized in float, antialiased when shrinking.
    """

    dataset: str
    train_sets: tuple[str, ...]
    test_set: str
    img_scale: tuple[int, int]
    keep_ratio: bool
    normalize: Normalize
    size_divisor: int | None
    with_mask: bool = False
    flip_ratio: float = 0.5
    train_proposals: str | None = None
    test_proposals: str | None = None
    num_max_proposals: int = 1000
    ssd_augment: SSDAugment | None = None
    train_scales: tuple[tuple[int, int], ...] | None = None
    multiscale_mode: str = "value"
    legacy_resize: bool = False


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


@dataclass(frozen=True)
class RunConfig:
    """What a training run used, stored in each of its checkpoints: enough to rebuild the
    model, its data pipeline and the run.

    Attributes:
        name: the run's name: a zoo row's ("faster_rcnn_r50_1x") or a recipe's
            ("quickstart_faster_rcnn").
        model: the model as built (classes of the dataset trained on).
        data: the data pipeline as used (scales of the data source trained on).
        schedule: the optimiser and schedule as run (`max_iters`: iterations planned).
        key: the zoo row, or None for a recipe.
        recipe: the recipe's name, or None for a zoo row.
        dataset: the data source trained on: "coco", "voc", "shapes" or an annotation JSON.
        class_names: names of the model's classes, in label order.
        overrides: the ``--set KEY=VALUE`` items applied to the zoo row (already in the
            fields above; kept to say how the run differs from its row).
        batch_per_gpu: images per process per iteration.
        world_size: processes (GPUs) trained on.
        seed: the random seed.
        amp: None, "bf16" or "fp16".
    """

    name: str
    model: ModelConfig
    data: DataConfig
    schedule: ScheduleConfig
    key: tuple[str, str, str, str | None] | None = None
    recipe: str | None = None
    dataset: str = "coco"
    class_names: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    batch_per_gpu: int = 2
    world_size: int = 1
    seed: int = 0
    amp: str | None = None


class OverrideError(ValueError):
    """A ``--set`` item or dotted path that is malformed or names no field of the config."""


def replace_path(config: Any, path: str, value: Any) -> Any:
    """A copy of a (nested) frozen dataclass with the field at a dotted path replaced.

    A list given for a tuple field becomes a tuple; a section (a nested config) is replaced
    only by another config, except `conventions`, which also takes a preset's name (det,
    mmdet_v0.6, torchvision). An index reaches into a tuple of sections, e.g.
    "model.roi.stages.1.assigner.pos_iou_thr".

    Args:
        config: a dataclass instance, e.g. a ZooConfig.
        path: dotted field names, e.g. "model.rpn.test_proposals.nms_thr".
        value: the new value.

    Returns:
        The new config; config itself is unchanged.

    Raises:
        OverrideError: naming the bad key and listing the valid keys at that level.
    """
    return _replace(config, path.split("."), value, [])


def _replace(node: Any, parts: list[str], value: Any, done: list[str]) -> Any:
    where = ".".join(done) or "the config"
    if isinstance(node, tuple) and node and dataclasses.is_dataclass(node[0]):
        return _replace_item(node, parts, value, done)
    if not dataclasses.is_dataclass(node):
        raise OverrideError(f"{where} is a value ({node!r}), it has no key {parts[0]!r}")
    names = [f.name for f in dataclasses.fields(node)]
    head, rest = parts[0], parts[1:]
    if head not in names:
        raise OverrideError(f"{where} has no key {head!r}; valid keys: {', '.join(names)}")
    current = getattr(node, head)
    path = ".".join([*done, head])
    if rest:
        if current is None:
            raise OverrideError(
                f"cannot set {path}.{'.'.join(rest)}: {type(node).__name__}.{head} is None "
                "in this config"
            )
        value = _replace(current, rest, value, [*done, head])
    elif isinstance(current, Conventions) and isinstance(value, str):
        if value not in CONVENTION_PRESETS:
            raise OverrideError(
                f"{path} must be one of {', '.join(CONVENTION_PRESETS)} (or set one of its keys)"
            )
        value = CONVENTION_PRESETS[value]
    elif dataclasses.is_dataclass(current) and not dataclasses.is_dataclass(value):
        keys = ", ".join(f.name for f in dataclasses.fields(current))
        raise OverrideError(f"{path} is a section; set one of its keys: {keys}")
    elif isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return dataclasses.replace(node, **{head: value})


def _replace_item(node: tuple, parts: list[str], value: Any, done: list[str]) -> tuple:
    """A tuple of configs (e.g. RoIConfig.stages) with item int(parts[0]) replaced."""
    where, head = ".".join(done), parts[0]
    if not head.isdigit() or int(head) >= len(node):
        raise OverrideError(
            f"{where} holds {len(node)} sections: give an index 0..{len(node) - 1}, "
            f"e.g. {where}.0, not {head!r}"
        )
    index = int(head)
    if len(parts) > 1:
        item = _replace(node[index], parts[1:], value, [*done, head])
    elif type(value) is type(node[index]):
        item = value
    else:
        keys = ", ".join(f.name for f in dataclasses.fields(node[index]))
        raise OverrideError(f"{where}.{head} is a section; set one of its keys: {keys}")
    return (*node[:index], item, *node[index + 1 :])


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=VALUE"`` -> ``("a.b", value)``; VALUE by ``ast.literal_eval``, else the string.

    Raises:
        OverrideError: no ``=``, or an empty key.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OverrideError(f"--set {item!r}: expected dotted.key=value")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = text
    return key, value


def apply_overrides(config: Any, items: list[str] | tuple[str, ...]) -> Any:
    """A copy of the config with each ``--set KEY=VALUE`` item applied (see `replace_path`).

    Raises:
        OverrideError: the message starts with the item (``--set KEY=VALUE: ...``).
    """
    for item in items:
        key, value = parse_override(item)
        try:
            config = replace_path(config, key, value)
        except OverrideError as e:
            raise OverrideError(f"--set {item}: {e}") from None
    return config


# ----------------------------------------------------------------------------- plain data
# Checkpoints store a RunConfig as plain data (dicts, lists, strings, numbers, None), which
# torch.load(..., weights_only=True) reads back: each dataclass becomes {"type": NAME,
# "fields": {...}} and each tuple a list; every sequence field of the configs is a tuple.

_PLAIN_TYPES = {
    cls.__name__: cls
    for cls in (
        BackboneConfig,
        NeckConfig,
        RPNConfig,
        RoIConfig,
        RoIStageConfig,
        AssignerConfig,
        SamplerConfig,
        DenseHeadConfig,
        ModelConfig,
        ScheduleConfig,
        Normalize,
        SSDAugment,
        DataConfig,
        ZooConfig,
        RunConfig,
        Conventions,
        ProposalConfig,
        NMSConfig,
    )
}


def to_plain(value: Any) -> Any:
    """A config (or any value inside one) as plain data; see `from_plain`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _PLAIN_TYPES.get(name) is not type(value):
            raise TypeError(f"to_plain: {name} is not a config type")
        fields = {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": name, "fields": fields}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"to_plain: cannot store a {type(value).__name__} ({value!r})")


def from_plain(data: Any) -> Any:
    """The config that `to_plain` stored. Fields missing from ``data`` take their defaults.

    Raises:
        ValueError: an unknown config type or field (written by another version).
    """
    if isinstance(data, dict):
        name = data.get("type")
        cls = _PLAIN_TYPES.get(name)
        if cls is None or not isinstance(data.get("fields"), dict):
            raise ValueError(f"stored config: unknown config type {name!r}")
        fields = data["fields"]
        if cls is RoIConfig:
            fields = _roi_fields_before_stages(fields)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"stored config: {name} has no field {', '.join(unknown)}")
        return cls(**{k: from_plain(v) for k, v in fields.items()})
    if isinstance(data, list):
        return tuple(from_plain(v) for v in data)
    return data


def _roi_fields_before_stages(fields: dict[str, Any]) -> dict[str, Any]:
    """A stored RoIConfig written before `stages` (num_stages, cascade_ious, stage_weights,
    sample_num), in today's fields; other field sets are returned unchanged."""
    legacy = {"num_stages", "cascade_ious", "stage_weights", "sample_num"}
    if not legacy & set(fields):
        return fields
    fields = dict(fields)
    n = fields.pop("num_stages", 1)
    ious = fields.pop("cascade_ious", [0.5, 0.6, 0.7])
    weights = fields.pop("stage_weights", [1.0, 0.5, 0.25])
    sampler = SamplerConfig(fields.pop("sample_num", 512), 0.25, add_gt_as_proposals=True)
    if n == 1:
        stages = [RoIStageConfig(sampler=sampler)]
    else:
        stages = [
            dataclasses.replace(
                stage,
                assigner=AssignerConfig(iou, iou, iou),
                loss_weight=weight,
                sampler=sampler,
            )
            for stage, iou, weight in zip(CASCADE_STAGES_2019, ious, weights, strict=False)
        ][:n]
    fields["stages"] = [to_plain(stage) for stage in stages]
    return fields
