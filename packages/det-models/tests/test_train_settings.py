"""The training step's settings live in the model config: the zoo rows hold the 2019 values
(mmdetection v0.6.0's train_cfg), ``--set`` reaches every one, and the builder honours them."""

from __future__ import annotations

import pytest
from test_training_step import step_losses

from det_heads import MaxIoUAssigner, RandomSampler
from det_models import zoo
from det_models.builder import build_model
from det_models.config import (
    CASCADE_STAGES_2019,
    AssignerConfig,
    DenseHeadConfig,
    OverrideError,
    RoIConfig,
    RoIStageConfig,
    SamplerConfig,
    apply_overrides,
    from_plain,
    to_plain,
)

SMALL = ["model.backbone.arch=r18", "model.backbone.base_channels=16"]


def _assigner_values(assigner: MaxIoUAssigner) -> tuple:
    return (
        assigner.pos_iou_thr,
        assigner.neg_iou_thr,
        assigner.min_pos_iou,
        assigner.gt_max_assign_all,
        assigner.ignore_iof_thr,
    )


def _sampler_values(sampler: RandomSampler) -> tuple:
    return (sampler.num, sampler.pos_fraction, sampler.neg_pos_ub, sampler.add_gt_as_proposals)


def test_the_faster_rcnn_row_holds_the_2019_train_cfg():
    model = zoo.get("faster_rcnn", "r50", "1x").model
    rpn, (stage,) = model.rpn, model.roi.stages
    # configs/faster_rcnn_r50_fpn_1x.py, train_cfg.rpn and train_cfg.rcnn
    assert rpn.assigner == AssignerConfig(0.7, 0.3, 0.3, ignore_iof_thr=-1)
    assert rpn.sampler == SamplerConfig(256, 0.5, -1, add_gt_as_proposals=False)
    assert (rpn.allowed_border, rpn.pos_weight, rpn.box_loss_beta) == (0, -1, 1 / 9)
    assert rpn.target_stds == (1.0, 1.0, 1.0, 1.0)
    assert stage.assigner == AssignerConfig(0.5, 0.5, 0.5)
    assert stage.sampler == SamplerConfig(512, 0.25, -1, add_gt_as_proposals=True)
    assert stage.target_stds == (0.1, 0.1, 0.2, 0.2) and stage.pos_weight == -1
    assert model.roi.box_loss_beta == 1.0


def test_the_cascade_row_holds_three_stages():
    roi = zoo.get("cascade_mask_rcnn", "r50", "1x").model.roi
    assert roi.stages == CASCADE_STAGES_2019 and roi.num_stages == 3
    assert [s.assigner.pos_iou_thr for s in roi.stages] == [0.5, 0.6, 0.7]
    assert [s.assigner.min_pos_iou for s in roi.stages] == [0.5, 0.6, 0.7]
    assert [s.loss_weight for s in roi.stages] == [1.0, 0.5, 0.25]
    assert roi.stages[2].target_stds == (0.033, 0.033, 0.067, 0.067)
    assert all(s.sampler == SamplerConfig(512, 0.25, add_gt_as_proposals=True) for s in roi.stages)


def test_the_single_stage_rows_hold_their_kinds_settings():
    retina = zoo.get("retinanet", "r50", "1x").model.dense
    assert retina.assigner == AssignerConfig(0.5, 0.4, 0.0)
    assert (retina.box_loss_beta, retina.focal_gamma, retina.focal_alpha) == (0.11, 2.0, 0.25)
    assert retina.target_stds == (1.0, 1.0, 1.0, 1.0) and retina.allowed_border == -1
    ssd = zoo.get("ssd300", "vgg16", "120e").model.dense
    assert ssd.assigner == AssignerConfig(0.5, 0.5, 0.0, gt_max_assign_all=False)
    assert (ssd.box_loss_beta, ssd.neg_pos_ratio) == (1.0, 3.0)
    assert ssd.target_stds == (0.1, 0.1, 0.2, 0.2)
    # An explicit value wins over the kind's default.
    assert DenseHeadConfig(kind="ssd", box_loss_beta=0.5).box_loss_beta == 0.5
    with pytest.raises(ValueError, match=r"DenseHeadConfig\.kind"):
        DenseHeadConfig(kind="fcos")


def test_set_reaches_the_two_stage_settings_and_the_builder_honours_them():
    cfg = apply_overrides(
        zoo.get("cascade_rcnn", "r50", "1x"),
        [
            *SMALL,
            "model.rpn.assigner.pos_iou_thr=0.65",
            "model.rpn.assigner.ignore_iof_thr=0.5",
            "model.rpn.sampler.num=128",
            "model.rpn.sampler.pos_fraction=0.25",
            "model.rpn.allowed_border=-1",
            "model.rpn.pos_weight=2.0",
            "model.rpn.box_loss_beta=0.2",
            "model.rpn.target_stds=[0.5, 0.5, 1.0, 1.0]",
            "model.rpn.cls_loss_weight=0.5",
            "model.roi.stages.1.assigner.pos_iou_thr=0.65",
            "model.roi.stages.1.sampler.num=64",
            "model.roi.stages.2.loss_weight=0.125",
            "model.roi.stages.0.pos_weight=3.0",
            "model.roi.box_loss_beta=0.5",
            "model.roi.box_loss_weight=2.0",
        ],
    )
    model = build_model(cfg.model)
    rpn, roi = model.rpn, model.roi_head
    assert _assigner_values(rpn.assigner) == (0.65, 0.3, 0.3, True, 0.5)
    assert _sampler_values(rpn.sampler) == (128, 0.25, -1, False)
    assert (rpn.allowed_border, rpn.pos_weight) == (-1, 2.0)
    assert (rpn.box_loss.beta, rpn.cls_loss.loss_weight) == (0.2, 0.5)
    assert tuple(rpn.coder.stds) == (0.5, 0.5, 1.0, 1.0)
    assert [a.pos_iou_thr for a in roi.assigners] == [0.5, 0.65, 0.7]
    assert [s.num for s in roi.samplers] == [512, 64, 512]
    assert roi.stage_weights == (1.0, 0.5, 0.125)
    assert [h.pos_weight for h in roi.bbox_heads] == [3.0, -1.0, -1.0]
    assert [h.coder.stds[0] for h in roi.bbox_heads] == pytest.approx([0.1, 0.05, 0.033])
    assert all(h.box_loss.beta == 0.5 and h.box_loss.loss_weight == 2.0 for h in roi.bbox_heads)


def test_set_reaches_the_dense_settings():
    retina = apply_overrides(
        zoo.get("retinanet", "r50", "1x"),
        [
            *SMALL,
            "model.dense.assigner.neg_iou_thr=0.3",
            "model.dense.focal_gamma=1.5",
            "model.dense.loss_normalizer=image",
        ],
    )
    head = build_model(retina.model).head
    assert _assigner_values(head.assigner)[:2] == (0.5, 0.3)
    assert head.loss_normalizer == "image"
    assert (head.cls_loss.gamma, head.box_loss.beta) == (1.5, 0.11)
    ssd = apply_overrides(
        zoo.get("ssd300", "vgg16", "120e"),
        ["model.backbone.base_channels=8", "model.dense.neg_pos_ratio=2.0"],
    )
    head = build_model(ssd.model).head
    assert head.neg_pos_ratio == 2.0 and head.assigner.gt_max_assign_all is False


def test_a_mask_loss_weight_scales_the_mask_loss():
    cfg = apply_overrides(zoo.get("mask_rcnn", "r50", "1x"), ["model.roi.mask_loss_weight=0.5"])
    assert build_model(cfg.model).roi_head.mask_head.loss_weight == 0.5


def test_pos_weight_changes_only_the_classification_losses():
    base = step_losses("faster_rcnn", "det")
    weighted = step_losses(
        "faster_rcnn", "det", ["model.rpn.pos_weight=2.0", "model.roi.stages.0.pos_weight=2.0"]
    )
    assert weighted["loss_rpn_box"] == pytest.approx(base["loss_rpn_box"], rel=1e-12)
    assert weighted["loss_box"] == pytest.approx(base["loss_box"], rel=1e-12)
    assert weighted["loss_rpn_cls"] > base["loss_rpn_cls"]
    assert weighted["loss_cls"] > base["loss_cls"]


def test_bad_indices_and_sections_are_named():
    cfg = zoo.get("cascade_rcnn", "r50", "1x")
    with pytest.raises(OverrideError, match=r"model.roi.stages holds 3 sections.*'3'"):
        apply_overrides(cfg, ["model.roi.stages.3.loss_weight=1.0"])
    with pytest.raises(OverrideError, match=r"model\.roi\.stages\.0 is a section"):
        apply_overrides(cfg, ["model.roi.stages.0=1"])
    with pytest.raises(OverrideError, match="has no key 'iou'"):
        apply_overrides(cfg, ["model.roi.stages.0.assigner.iou=0.5"])
    with pytest.raises(ValueError, match=r"SamplerConfig\.num must be > 0"):
        apply_overrides(cfg, ["model.rpn.sampler.num=0"])


def test_the_rpn_sampler_never_adds_ground_truth():
    cfg = apply_overrides(
        zoo.get("rpn", "r50", "1x"), ["model.rpn.sampler.add_gt_as_proposals=True"]
    )
    with pytest.raises(ValueError, match="add_gt_as_proposals must be False"):
        build_model(cfg.model)


def test_a_stored_roi_config_from_before_stages_still_loads():
    legacy = {
        "type": "RoIConfig",
        "fields": {
            "with_mask": True,
            "num_stages": 3,
            "cascade_ious": [0.5, 0.6, 0.7],
            "stage_weights": [1.0, 0.5, 0.25],
            "sample_num": 256,
        },
    }
    roi = from_plain(legacy)
    assert roi.with_mask and roi.num_stages == 3
    assert [s.assigner.pos_iou_thr for s in roi.stages] == [0.5, 0.6, 0.7]
    assert [s.loss_weight for s in roi.stages] == [1.0, 0.5, 0.25]
    assert all(s.sampler == SamplerConfig(256, 0.25, add_gt_as_proposals=True) for s in roi.stages)
    single = from_plain({"type": "RoIConfig", "fields": {"num_stages": 1, "sample_num": 128}})
    assert single.stages == (
        RoIStageConfig(sampler=SamplerConfig(128, 0.25, add_gt_as_proposals=True)),
    )
    # Today's configs go through plain data unchanged.
    roi = RoIConfig(stages=CASCADE_STAGES_2019)
    assert from_plain(to_plain(roi)) == roi


def test_the_settings_change_the_step_they_describe():
    """A setting the builder ignored would leave the pinned step unchanged."""
    base = step_losses("retinanet", "det")
    moved = step_losses("retinanet", "det", ["model.dense.box_loss_beta=0.5"])
    assert moved["loss_cls"] == pytest.approx(base["loss_cls"], rel=1e-12)
    assert moved["loss_box"] != pytest.approx(base["loss_box"], rel=1e-6)
