"""--set, --load-from and --amp of the train command line (parsing and errors, no training)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from det_engine import checkpoint as ckpt
from det_engine.apps import train as train_cli
from det_engine.apps.train import parse_args
from det_engine.checkpoint import CheckpointError, load_model_weights
from det_models import OverrideError, apply_overrides, parse_override

ROW = ["retinanet", "r50", "1x"]


@pytest.fixture(scope="module")
def cfg():
    from det_models import zoo

    return zoo.get(*ROW)


def test_parse_args_collects_repeated_sets_amp_and_load_from():
    args = parse_args([*ROW, "--set", "schedule.lr=0.01", "--set", "a.b=x", "--amp", "bf16"])
    assert args.overrides == ["schedule.lr=0.01", "a.b=x"]
    assert args.amp == "bf16" and args.load_from is None
    assert parse_args([*ROW, "--load-from", "w.pth"]).load_from == "w.pth"
    with pytest.raises(SystemExit):
        parse_args([*ROW, "--amp", "fp32"])


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("schedule.lr=0.01", ("schedule.lr", 0.01)),
        ("a=3", ("a", 3)),
        ("a=(8, 11)", ("a", (8, 11))),
        ("a=None", ("a", None)),
        ("a=True", ("a", True)),
        ("a='x y'", ("a", "x y")),
        ("a=hello", ("a", "hello")),  # not a literal: the string
        ("a=b=c", ("a", "b=c")),
    ],
)
def test_parse_override(item, expected):
    assert parse_override(item) == expected


@pytest.mark.parametrize("item", ["schedule.lr", "=3"])
def test_parse_override_rejects_malformed(item):
    with pytest.raises(OverrideError, match=r"expected dotted\.key=value"):
        parse_override(item)


def test_apply_overrides_replaces_nested_fields(cfg):
    out = apply_overrides(
        cfg, ["schedule.lr=0.005", "schedule.lr_steps=[4, 6]", "model.backbone.frozen_stages=-1"]
    )
    assert out.schedule.lr == 0.005
    assert out.schedule.lr_steps == (4, 6)  # a list given for a tuple field becomes a tuple
    assert out.model.backbone.frozen_stages == -1
    assert cfg.schedule.lr == 0.01  # the original is unchanged
    assert out.schedule.momentum == cfg.schedule.momentum


def test_apply_overrides_takes_a_box_convention_by_name(cfg):
    from det_models import CONVENTION_PRESETS

    out = apply_overrides(cfg, ["model.conventions=mmdet_v0.6"])
    assert out.model.conventions == CONVENTION_PRESETS["mmdet_v0.6"]
    assert out.model.conventions.box_offset == 1
    out = apply_overrides(cfg, ["model.conventions.box_offset=1"])
    assert out.model.conventions.box_offset == 1 and out.model.conventions.anchors == "det"
    with pytest.raises(OverrideError, match=r"must be one of det, mmdet_v0\.6, torchvision"):
        apply_overrides(cfg, ["model.conventions=detectron"])


def test_apply_overrides_unknown_key_lists_the_valid_keys_at_that_level(cfg):
    with pytest.raises(OverrideError) as e:
        apply_overrides(cfg, ["schedule.lrr=0.1"])
    msg = str(e.value)
    assert "schedule has no key 'lrr'" in msg
    assert "lr, " in msg and "momentum" in msg and "weight_decay" in msg
    with pytest.raises(
        OverrideError, match=r"the config has no key 'foo'; valid keys: key, model, data, schedule"
    ):
        apply_overrides(cfg, ["foo=1"])
    with pytest.raises(OverrideError, match=r"schedule.lr is a value \(0.01\), it has no key 'x'"):
        apply_overrides(cfg, ["schedule.lr.x=1"])
    with pytest.raises(OverrideError, match=r"schedule is a section; set one of its keys: .*lr"):
        apply_overrides(cfg, ["schedule=1"])


def test_cli_bad_set_is_a_clear_error(tmp_path, capsys):
    rc = train_cli.main([*ROW, "--set", "schedule.nope=1", "--work-dir", str(tmp_path / "w")])
    assert rc == 2
    assert "schedule has no key 'nope'; valid keys:" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_cli_fp16_on_cpu_is_a_clear_error(capsys):
    assert train_cli.main([*ROW, "--device", "cpu", "--amp", "fp16"]) == 2
    assert (
        "--amp fp16: amp 'fp16' needs a CUDA device; on the CPU use 'bf16'"
        in capsys.readouterr().err
    )


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))


def test_load_model_weights_from_our_checkpoint_and_a_plain_state_dict(tmp_path):
    src = _model()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.5)
    ours = ckpt.save(tmp_path / "iter_00000003.pth", model=src, epoch=0, iteration=3)
    plain = tmp_path / "plain.pth"
    torch.save(src.state_dict(), plain)
    for path in (ours, plain):
        dst = _model()
        assert not torch.equal(dst[0].weight, src[0].weight)
        load_model_weights(dst, path)
        for k, v in src.state_dict().items():
            assert torch.equal(dst.state_dict()[k], v)


def test_load_model_weights_errors(tmp_path):
    bad_keys = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 3)}, bad_keys)
    with pytest.raises(CheckpointError, match=r"(?s)do not fit the model.*Missing key"):
        load_model_weights(_model(), bad_keys)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "meta": 1}, foreign)
    with pytest.raises(CheckpointError, match="neither a det_engine checkpoint nor a plain"):
        load_model_weights(_model(), foreign)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_model_weights(_model(), corrupt)
    with pytest.raises(FileNotFoundError):
        load_model_weights(_model(), tmp_path / "missing.pth")


def test_a_named_row_must_be_whole_and_the_checkpoints_own():
    import argparse

    from det_engine.apps.cli import check_checkpoint_row, named_row
    from det_models import RunConfig, zoo

    def args(*row, variant=None):
        return argparse.Namespace(
            model=row[0] if row else None,
            backbone=row[1] if row else None,
            schedule=row[2] if len(row) > 2 else None,
            variant=variant,
            ckpt="ckpt.pth",
        )

    assert named_row(args()) is None
    assert named_row(args("rpn", "r50", "1x")) == ("rpn", "r50", "1x")
    with pytest.raises(ValueError, match="name the zoo row whole"):
        named_row(args("rpn", "r50"))
    row = zoo.get("rpn", "r50", "1x")
    run = RunConfig(name="rpn_r50_1x", model=row.model, data=row.data, schedule=row.schedule,
                    key=row.key)  # fmt: skip
    check_checkpoint_row(args("rpn", "r50", "1x"), run, "test")  # its own row: fine
    check_checkpoint_row(args(), run, "test")
    with pytest.raises(ValueError, match=r"ckpt.pth is a checkpoint of rpn_r50_1x .* not of "
                       r"rpn r50 2x; leave the row out to test"):  # fmt: skip
        check_checkpoint_row(args("rpn", "r50", "2x"), run, "test")
