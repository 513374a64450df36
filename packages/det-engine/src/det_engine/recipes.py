"""Recipes: runs that are not zoo rows. The quickstart's recipe trains each family from
scratch on the built-in shapes dataset on a CPU in minutes.

The recipe is chosen for a 2-core CPU and no pretrained weights: a slim ResNet-18 (half
width) with trainable BatchNorm, a 64-channel FPN and RPN, a box head of two 32-channel
conv + GroupNorm layers and one FC, multi-scale training between 192 and 288 pixels (short
side) and testing at 288, AdamW with warmup and cosine decay over 8 images per step, and 128
sampled RoIs per image instead of the zoo's 512. SSD: a quarter-width VGG16 with BatchNorm at
300 pixels.
"""

from __future__ import annotations

import dataclasses

from det_models import (
    CASCADE_STAGES_2019,
    BackboneConfig,
    DataConfig,
    DenseHeadConfig,
    ModelConfig,
    NeckConfig,
    ProposalConfig,
    RoIConfig,
    RoIStageConfig,
    RPNConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    SSDAugment,
    zoo,
)

QUICKSTART_FAMILIES = (
    "faster_rcnn",
    "fast_rcnn",
    "mask_rcnn",
    "cascade_rcnn",
    "cascade_mask_rcnn",
    "retinanet",
    "rpn",
    "ssd",
)
# Shapes are 16..115 pixels in 160..256 pixel images: upscaled, the small ones reach the
# anchors of P2. A range of scales in training; testing at its top scale gave box AP
# 0.02-0.04 more than at its middle (240) for each of five trained models (MODEL_ZOO.md).
QUICKSTART_TEST_SCALE = (384, 288)
QUICKSTART_TRAIN_SCALES = ((256, 192), (384, 288))
# AdamW with a short linear warmup and cosine decay to 1% over the run; 8 images per step.
# From scratch, this network learns far more per image from batches of 8 than of 4 or 2 at
# this lr (fp32, seed 1: box AP 0.79 after 787 steps of 8 within the 10-minute budget,
# 0.55 after 1350 steps of 4, 0.36 after 2476 steps of 2; MODEL_ZOO.md).
QUICKSTART_SCHEDULE = ScheduleConfig(
    epochs=1,  # the length is max_iters (set by --iters or by the time budget)
    lr_steps=(),
    lr=2e-3,
    weight_decay=1e-4,
    warmup="linear",
    warmup_iters=50,
    grad_clip_norm=10.0,
    gpus=1,
    imgs_per_gpu=8,
    optimizer="adamw",
    lr_policy="cosine",
    max_iters=1850,
    final_lr_ratio=0.01,
)


def quickstart_model(family: str = "faster_rcnn") -> ModelConfig:
    """The from-scratch model of the quickstart ``family`` (one of QUICKSTART_FAMILIES)."""
    if family not in QUICKSTART_FAMILIES:
        raise ValueError(f"family must be one of {', '.join(QUICKSTART_FAMILIES)}; got {family!r}")
    channels = 64
    # A half-width ResNet-18 with BatchNorm trained from the start: no pretrained weights
    # exist for it, and frozen statistics would be those of a random network.
    backbone = BackboneConfig(
        arch="r18", norm="BN", norm_eval=False, frozen_stages=-1, base_channels=32
    )
    # Shapes are 16..115 pixels: anchors of 16 px at stride 4 up to 256 px at stride 64.
    rpn = RPNConfig(
        feat_channels=channels,
        anchor_scales=(4.0,),
        train_proposals=ProposalConfig(nms_pre=1000, nms_post=256, max_num=256),
        test_proposals=ProposalConfig(nms_pre=500, nms_post=300, max_num=300),
    )
    # Two 3x3 conv + GroupNorm layers before one FC: from scratch, the plain 2-FC head is
    # slower to tell the three shapes apart (box AP 0.27 against 0.38 after 1000
    # iterations, MODEL_ZOO.md).
    # 128 RoIs per image (the zoo: 512): a few objects per picture.
    sampler = SamplerConfig(128, 0.25, add_gt_as_proposals=True)
    roi = RoIConfig(
        num_convs=2,
        conv_channels=32,
        norm="GN",
        num_fcs=1,
        fc_channels=256,
        stages=(RoIStageConfig(sampler=sampler),),
    )
    neck = NeckConfig(out_channels=channels)
    if family == "ssd":
        # The zoo's VGG16 has no norm layers and trains only from ImageNet weights; at a
        # quarter of its width with BatchNorm after every conv it trains from scratch.
        return ModelConfig(
            family="ssd",
            num_classes=3,
            backbone=BackboneConfig(arch="vgg16-ssd300", norm="BN", base_channels=16),
            neck=None,
            rpn=None,
            dense=DenseHeadConfig(kind="ssd", input_size=300),
        )
    if family == "retinanet":
        return ModelConfig(
            family="retinanet",
            num_classes=3,
            backbone=backbone,
            neck=NeckConfig(
                out_channels=channels, num_outs=5, extra="conv_on_input", start_level=1
            ),
            rpn=None,
            # Anchors from 16 px on P3 (the zoo: 32 px), as the shapes start at 16 px.
            dense=DenseHeadConfig(
                kind="retina", stacked_convs=2, feat_channels=channels, octave_base_scale=2.0
            ),
        )
    if family == "rpn":
        return ModelConfig(family="rpn", num_classes=1, backbone=backbone, neck=neck, rpn=rpn)
    if family == "fast_rcnn":  # the same second stage on an RPN run's proposals
        return ModelConfig(
            family="fast_rcnn", num_classes=3, backbone=backbone, neck=neck, rpn=None, roi=roi
        )
    if "cascade" in family:
        stages = tuple(dataclasses.replace(s, sampler=sampler) for s in CASCADE_STAGES_2019)
        roi = dataclasses.replace(roi, stages=stages)
    roi = dataclasses.replace(roi, with_mask=family.endswith("mask_rcnn"))
    return ModelConfig(family=family, num_classes=3, backbone=backbone, neck=neck, rpn=rpn, roi=roi)


def quickstart_data(family: str = "faster_rcnn") -> DataConfig:
    """The data pipeline of the quickstart ``family``: the zoo's normalisation, flip and
    padding at the recipe's scales (multi-scale "range" training between
    QUICKSTART_TRAIN_SCALES, testing at QUICKSTART_TEST_SCALE); SSD keeps the photometric
    distortion of its augmentation but not the zoom-out and crop, which pay off over the
    zoo's 120 epochs rather than a run of minutes."""
    if family == "ssd":
        return dataclasses.replace(
            zoo.get("ssd300", "vgg16", "120e").data,
            img_scale=(300, 300),
            ssd_augment=SSDAugment(expand_ratio_range=None, min_ious=None),
        )
    return dataclasses.replace(
        zoo.get("faster_rcnn", "r50", "1x").data,
        img_scale=QUICKSTART_TEST_SCALE,
        train_scales=QUICKSTART_TRAIN_SCALES,
        multiscale_mode="range",
        with_mask=family.endswith("mask_rcnn"),
        train_proposals=None,
        test_proposals=None,
    )


def quickstart_run(family: str = "faster_rcnn", *, seed: int = 0) -> RunConfig:
    """The quickstart's run of ``family`` on the shapes dataset (class names are set from
    the dataset when it is loaded)."""
    return RunConfig(
        name=f"quickstart_{family}",
        model=quickstart_model(family),
        data=quickstart_data(family),
        schedule=QUICKSTART_SCHEDULE,
        recipe="quickstart",
        dataset="shapes",
        batch_per_gpu=QUICKSTART_SCHEDULE.imgs_per_gpu,
        seed=seed,
    )
