"""Building a detector from its ModelConfig: config values in, composed modules out.

Every setting of the training step (assigners, samplers, coder stds, loss betas and weights,
allowed border, positive weight) comes from the config; the builder chooses none of them.
"""

from __future__ import annotations

from torch import nn

from det_backbones import build_backbone
from det_heads import (
    FPN,
    AnchorGenerator,
    BBoxHead,
    CascadeRoIHead,
    CrossEntropyLoss,
    DeltaXYWHCoder,
    FocalLoss,
    MaskHead,
    MaxIoUAssigner,
    RandomSampler,
    RetinaAnchorGenerator,
    RetinaHead,
    RoIExtractor,
    RPNHead,
    SmoothL1Loss,
    SSDAnchorGenerator,
    SSDHead,
    StandardRoIHead,
)
from det_heads.conventions import Conventions
from det_models.config import (
    FAMILIES,
    ROI_POOLS,
    AssignerConfig,
    BackboneConfig,
    ModelConfig,
    NeckConfig,
    RoIConfig,
    RoIStageConfig,
    SamplerConfig,
)
from det_models.detectors import RPN, SSD, CascadeRCNN, FasterRCNN, FastRCNN, MaskRCNN, RetinaNet


def build_model(config: ModelConfig) -> nn.Module:
    """The detector a ModelConfig describes, with freshly initialised weights.

    Args:
        config: the model config (see det_models.config; the zoo gives one per row).

    Returns:
        An RPN, FastRCNN, FasterRCNN, MaskRCNN, CascadeRCNN, RetinaNet or SSD module.
    """
    if config.family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {config.family!r}")
    if config.num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {config.num_classes}")
    model = _detector(config)
    # What the model was built from: its conventions are checked when weights are loaded.
    model.model_config = config
    return model


def _detector(config: ModelConfig) -> nn.Module:
    conv = config.conventions
    backbone = _backbone(config.backbone)
    if config.family == "ssd":
        return SSD(backbone=backbone, head=_ssd_head(config, backbone.out_channels))
    neck = _neck(config.neck, backbone.out_channels)
    if config.family == "retinanet":
        dense = config.dense
        head = RetinaHead(
            config.num_classes,
            neck.out_channels,
            dense.feat_channels,
            dense.stacked_convs,
            anchor_generator=RetinaAnchorGenerator(
                octave_base_scale=dense.octave_base_scale, style=conv.anchors
            ),
            coder=_coder(conv, dense.target_stds),
            assigner=_assigner(dense.assigner, conv),
            cls_loss=FocalLoss(gamma=dense.focal_gamma, alpha=dense.focal_alpha),
            box_loss=SmoothL1Loss(beta=dense.box_loss_beta),
            allowed_border=dense.allowed_border,
            pos_weight=dense.pos_weight,
            loss_normalizer=dense.loss_normalizer,
            nms_pre=dense.nms_pre,
            candidates=conv.dense_candidates,
            **({"nms": dense.nms} if dense.nms is not None else {}),
        )
        return RetinaNet(backbone=backbone, neck=neck, head=head)
    if config.family == "rpn":
        return RPN(backbone=backbone, neck=neck, rpn=_rpn_head(config, neck.out_channels))
    roi_head = _roi_head(config.roi, config.num_classes, neck.out_channels, conv)
    if config.family == "fast_rcnn":
        return FastRCNN(backbone=backbone, neck=neck, roi_head=roi_head)
    rpn = _rpn_head(config, neck.out_channels)
    detector = {
        "faster_rcnn": FasterRCNN,
        "mask_rcnn": MaskRCNN,
        "cascade_rcnn": CascadeRCNN,
        "cascade_mask_rcnn": CascadeRCNN,
    }[config.family]
    return detector(backbone=backbone, neck=neck, rpn=rpn, roi_head=roi_head)


def _coder(conv: Conventions, stds: tuple[float, ...]) -> DeltaXYWHCoder:
    return DeltaXYWHCoder(stds=stds, offset=conv.box_offset, clamp=conv.delta_clamp)


def _assigner(config: AssignerConfig, conv: Conventions) -> MaxIoUAssigner:
    return MaxIoUAssigner(
        config.pos_iou_thr,
        config.neg_iou_thr,
        config.min_pos_iou,
        gt_max_assign_all=config.gt_max_assign_all,
        ignore_iof_thr=config.ignore_iof_thr,
        offset=conv.box_offset,
    )


def _sampler(config: SamplerConfig) -> RandomSampler:
    return RandomSampler(
        config.num,
        config.pos_fraction,
        config.neg_pos_ub,
        add_gt_as_proposals=config.add_gt_as_proposals,
    )


def _backbone(config: BackboneConfig) -> nn.Module:
    if config.arch.startswith("vgg16"):
        if config.norm not in ("FrozenBN", "BN"):
            raise ValueError(
                f"BackboneConfig.norm of {config.arch} must be 'FrozenBN' (the zoo's VGG, "
                f"without norm layers) or 'BN'; got {config.norm!r}"
            )
        vgg = {"norm": "BN"} if config.norm == "BN" else {}
        if config.base_channels != 64:
            vgg["base_channels"] = config.base_channels
        return build_backbone(config.arch, **vgg)
    overrides = {
        "norm": config.norm,
        "norm_eval": config.norm_eval,
        "frozen_stages": config.frozen_stages,
        "dcn": config.dcn,
        "stage_with_dcn": config.stage_with_dcn,
        "deform_groups": config.deform_groups,
    }
    if config.base_channels != 64:
        overrides["base_channels"] = config.base_channels
    if config.style is not None:
        overrides["style"] = config.style
    return build_backbone(config.arch, **overrides)


def _neck(config: NeckConfig, in_channels: list[int]) -> FPN:
    return FPN(
        in_channels,
        config.out_channels,
        config.num_outs,
        config.extra,
        start_level=config.start_level,
        relu_before_extra=config.relu_before_extra,
        norm=config.norm,
    )


def _rpn_head(config: ModelConfig, channels: int) -> RPNHead:
    rpn, conv = config.rpn, config.conventions
    anchors = AnchorGenerator(
        rpn.anchor_strides, rpn.anchor_scales, rpn.anchor_ratios, style=conv.anchors
    )
    if rpn.sampler.add_gt_as_proposals:
        raise ValueError(
            "RPNConfig.sampler: the RPN samples anchors; add_gt_as_proposals must be False"
        )
    return RPNHead(
        channels,
        rpn.feat_channels,
        anchor_generator=anchors,
        coder=_coder(conv, rpn.target_stds),
        assigner=_assigner(rpn.assigner, conv),
        sampler=_sampler(rpn.sampler),
        cls_loss=CrossEntropyLoss(use_sigmoid=True, loss_weight=rpn.cls_loss_weight),
        box_loss=SmoothL1Loss(beta=rpn.box_loss_beta, loss_weight=rpn.box_loss_weight),
        allowed_border=rpn.allowed_border,
        pos_weight=rpn.pos_weight,
        train_proposals=rpn.train_proposals,
        test_proposals=rpn.test_proposals,
    )


def _extractor(config: RoIConfig, size: int, conv: Conventions) -> RoIExtractor:
    return RoIExtractor(
        config.strides,
        size,
        config.sampling_ratio,
        aligned=conv.roi_align_aligned,
        box_offset=conv.box_offset,
    )


def _box_extractor(config: RoIConfig, channels: int, conv: Conventions) -> RoIExtractor:
    if config.pool not in ROI_POOLS:
        raise ValueError(f"RoIConfig.pool must be one of {ROI_POOLS}, got {config.pool!r}")
    if config.pool == "align":
        return _extractor(config, config.roi_size, conv)
    if conv.roi_align == "legacy":  # the 2019 RoIAlign comes with the 2019 deformable pooling
        return RoIExtractor.legacy_deformable(
            channels, config.pool, config.strides, config.roi_size, box_offset=conv.box_offset
        )
    return RoIExtractor(
        config.strides,
        config.roi_size,
        config.sampling_ratio,
        config.pool,
        aligned=True,
        box_offset=conv.box_offset,
        channels=channels,
    )


def _box_head(
    config: RoIConfig, num_classes: int, channels: int, stage: RoIStageConfig, conv: Conventions
) -> BBoxHead:
    if config.num_convs and config.norm != "GN":
        raise ValueError("RoIConfig: box head convs are only built with norm 'GN'")
    return BBoxHead(
        num_classes,
        channels,
        config.roi_size,
        config.fc_channels,
        config.num_fcs,
        num_convs=config.num_convs,
        conv_channels=config.conv_channels,
        norm=config.norm,
        class_agnostic=config.num_stages > 1,
        coder=_coder(conv, stage.target_stds),
        cls_loss=CrossEntropyLoss(loss_weight=config.cls_loss_weight),
        box_loss=SmoothL1Loss(beta=config.box_loss_beta, loss_weight=config.box_loss_weight),
        pos_weight=stage.pos_weight,
    )


def _mask_parts(config: RoIConfig, num_classes: int, channels: int, conv: Conventions):
    extractor = _extractor(config, config.mask_roi_size, conv)
    head = MaskHead(
        num_classes,
        channels,
        channels,
        config.mask_num_convs,
        norm=config.norm,
        loss_weight=config.mask_loss_weight,
    )
    return extractor, head


def _roi_head(
    config: RoIConfig, num_classes: int, channels: int, conv: Conventions
) -> StandardRoIHead | CascadeRoIHead:
    if config.num_stages == 1:
        mask_extractor, mask_head = (
            _mask_parts(config, num_classes, channels, conv) if config.with_mask else (None, None)
        )
        (stage,) = config.stages
        return StandardRoIHead(
            _box_extractor(config, channels, conv),
            _box_head(config, num_classes, channels, stage, conv),
            assigner=_assigner(stage.assigner, conv),
            mask_extractor=mask_extractor,
            mask_head=mask_head,
            sampler=_sampler(stage.sampler),
            nms=config.nms,
            conventions=conv,
        )
    n = config.num_stages
    masks = [_mask_parts(config, num_classes, channels, conv) for _ in range(n)]
    return CascadeRoIHead(
        [_box_extractor(config, channels, conv) for _ in range(n)],
        [_box_head(config, num_classes, channels, stage, conv) for stage in config.stages],
        assigners=[_assigner(stage.assigner, conv) for stage in config.stages],
        samplers=[_sampler(stage.sampler) for stage in config.stages],
        stage_weights=[stage.loss_weight for stage in config.stages],
        mask_extractors=[m[0] for m in masks] if config.with_mask else None,
        mask_heads=[m[1] for m in masks] if config.with_mask else None,
        nms=config.nms,
        conventions=conv,
    )


def _ssd_head(config: ModelConfig, in_channels: list[int]) -> SSDHead:
    dense, conv = config.dense, config.conventions
    if conv.anchors == "torchvision":
        raise ValueError(
            "Conventions.anchors: SSD anchors are built in the 'det' or 'mmdet' style; "
            "'torchvision' has no SSD VGG16 model here"
        )
    anchors = SSDAnchorGenerator(
        dense.input_size, basesize_ratio_range=dense.basesize_ratio_range, style=conv.anchors
    )
    extra = {"nms": dense.nms} if dense.nms is not None else {}
    return SSDHead(
        config.num_classes,
        in_channels,
        anchor_generator=anchors,
        coder=_coder(conv, dense.target_stds),
        assigner=_assigner(dense.assigner, conv),
        box_loss=SmoothL1Loss(beta=dense.box_loss_beta),
        neg_pos_ratio=dense.neg_pos_ratio,
        allowed_border=dense.allowed_border,
        **extra,
    )
