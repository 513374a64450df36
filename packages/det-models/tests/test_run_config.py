"""The run record: every config stored as plain data and read back whole, and the model of a
checkpoint rebuilt from its record alone."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from det_models import Detector, zoo
from det_models.builder import build_model
from det_models.checkpoint import CheckpointError, model_from_checkpoint
from det_models.config import (
    BackboneConfig,
    ModelConfig,
    NeckConfig,
    OverrideError,
    RoIConfig,
    RoIStageConfig,
    RPNConfig,
    RunConfig,
    SamplerConfig,
    apply_overrides,
    from_plain,
    to_plain,
)


def _through_torch_load(data):
    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_every_zoo_row_round_trips_as_plain_data():
    for key in zoo.names():
        config = zoo.get(*key)
        assert from_plain(_through_torch_load(to_plain(config))) == config, key


def test_plain_data_errors_name_the_type_and_field():
    plain = to_plain(zoo.get("faster_rcnn", "r50", "1x").schedule)
    plain["fields"]["lr_decay"] = 0.1
    with pytest.raises(ValueError, match="ScheduleConfig has no field lr_decay"):
        from_plain(plain)
    with pytest.raises(ValueError, match="unknown config type 'Pipeline'"):
        from_plain({"type": "Pipeline", "fields": {}})
    with pytest.raises(TypeError, match="cannot store a dict"):
        to_plain(dataclasses.replace(zoo.get("rpn", "r50", "1x").schedule, lr_steps={}))
    # a field missing from what was stored (an older writer) takes its default
    del plain["fields"]["lr_decay"], plain["fields"]["final_lr_ratio"]
    assert from_plain(plain).final_lr_ratio == 0.0


def test_overrides_are_applied_by_dotted_path_with_clear_errors():
    row = zoo.get("retinanet", "r50", "1x")
    out = apply_overrides(row, ["schedule.lr_steps=[4, 6]", "model.conventions=mmdet_v0.6"])
    assert out.schedule.lr_steps == (4, 6) and out.model.conventions.box_offset == 1
    with pytest.raises(OverrideError, match=r"^--set model.rpn.x=1: cannot set model.rpn.x"):
        apply_overrides(row, ["model.rpn.x=1"])  # RetinaNet has no RPN
    with pytest.raises(OverrideError, match=r"model.neck is a section; set one of its keys"):
        apply_overrides(row, ["model.neck=3"])


def _tiny_run() -> RunConfig:
    model = ModelConfig(
        family="faster_rcnn",
        num_classes=3,
        backbone=BackboneConfig(arch="r18", norm="BN", norm_eval=False, base_channels=8),
        neck=NeckConfig(out_channels=16),
        rpn=RPNConfig(feat_channels=16),
        roi=RoIConfig(
            fc_channels=32,
            stages=(RoIStageConfig(sampler=SamplerConfig(32, 0.25, add_gt_as_proposals=True)),),
        ),
    )
    row = zoo.get("faster_rcnn", "r50", "1x")
    return RunConfig(
        name="tiny",
        model=model,
        data=dataclasses.replace(row.data, img_scale=(96, 64)),
        schedule=row.schedule,
        dataset="shapes",
        class_names=("circle", "square", "triangle"),
    )


def test_model_from_checkpoint_rebuilds_the_run(tmp_path):
    run = _tiny_run()
    torch.manual_seed(0)
    trained = build_model(run.model)
    path = tmp_path / "iter_00000001.pth"
    torch.save({"model": trained.state_dict(), "run": to_plain(run)}, path)

    model, stored = model_from_checkpoint(path)
    assert stored == run and not model.training
    images = torch.rand(1, 3, 64, 96)
    metas = [{"img_shape": (64, 96, 3), "pad_shape": (64, 96, 3), "ori_shape": (64, 96, 3),
              "scale_factor": 1.0, "flip": False}]  # fmt: skip
    trained.eval()
    with torch.no_grad():
        expected, got = trained(images, metas)[0], model(images, metas)[0]
    for name in ("boxes", "scores", "labels"):
        torch.testing.assert_close(got[name], expected[name])
    detector = Detector.from_checkpoint(path)
    assert detector.data_config.img_scale == (96, 64)


def test_model_from_checkpoint_errors_name_the_file(tmp_path):
    run = _tiny_run()
    bare = tmp_path / "bare.pth"
    torch.save({"model": build_model(run.model).state_dict()}, bare)
    with pytest.raises(CheckpointError, match=rf"checkpoint {bare} holds no run record"):
        model_from_checkpoint(bare)
    other = dataclasses.replace(run, model=dataclasses.replace(run.model, num_classes=5))
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": build_model(run.model).state_dict(), "run": to_plain(other)}, wrong)
    with pytest.raises(CheckpointError, match=rf"the weights in {wrong} do not fit its run tiny"):
        model_from_checkpoint(wrong)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_from_checkpoint(tmp_path / "missing.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        model_from_checkpoint(broken)
