"""The train and test command lines on a tiny shapes dataset (CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from det_engine import checkpoint as ckpt
from det_engine import test as test_cli
from det_engine import train as train_cli

ROW = ["retinanet", "r50", "1x"]
FAST = ["--device", "cpu", "--workers", "0", "--img-scale", "128", "96", "--batch-size", "1"]


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from det_data import shapes

    return shapes.prepare(tmp_path_factory.mktemp("data") / "shapes", {"train": 4, "val": 2})


def _records(work_dir):
    lines = (work_dir / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_missing_coco_names_where_it_looked(tmp_path, capsys):
    root = tmp_path / "nowhere" / "coco"
    rc = train_cli.main([*ROW, "--data-root", str(root), "--work-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(root / "annotations" / "instances_train2017.json") in err
    assert "--data shapes" in err
    assert not (tmp_path / "w").exists()


def test_unknown_annotation_file_is_an_error(tmp_path, capsys):
    rc = train_cli.main([*ROW, "--data", str(tmp_path / "ann.json")])
    assert rc == 2
    assert "ann.json" in capsys.readouterr().err


@pytest.mark.slow
def test_train_writes_checkpoint_log_eval_then_resume_and_test(shapes_root, tmp_path, capsys):
    work = tmp_path / "work"
    common = [*ROW, "--data", "shapes", "--data-root", str(shapes_root), *FAST]
    common += ["--work-dir", str(work), "--log-interval", "1"]
    assert train_cli.main([*common, "--max-iters", "1"]) == 0
    out = capsys.readouterr().out

    # checkpoint after the one iteration, with the schedule and the run's config
    first = work / "iter_00000001.pth"
    assert ckpt.latest(work) == first
    data = ckpt.load(first)
    assert (data["epoch"], data["iteration"]) == (0, 1)
    # lr 0.01 per 16 images (RetinaNet) scaled to 1 image
    assert data["scheduler"]["base_lr"] == pytest.approx(0.01 / 16)
    assert data["scheduler"]["iters_per_epoch"] == 4
    assert data["config"]["num_classes"] == 3
    assert len(data["optimizer"]["state"]) > 0  # momentum buffers were saved

    records = _records(work)
    train_records = [r for r in records if r["mode"] == "train"]
    assert [r["iter"] for r in train_records] == [1]
    assert train_records[0]["lr"] == pytest.approx(0.01 / 16 / 3)  # warmup starts at 1/3
    assert train_records[0]["loss"] == pytest.approx(
        train_records[0]["loss_cls"] + train_records[0]["loss_box"]
    )
    assert records[-1]["mode"] == "val" and "bbox_AP" in records[-1]

    evaluation = json.loads((work / "eval.json").read_text())
    assert set(evaluation["metrics"]) >= {"bbox_AP", "bbox_AP50", "bbox_AR100"}
    assert all(0.0 <= v <= 1.0 for v in evaluation["metrics"].values())
    assert "bbox_AP:" in out

    # --resume without a value: the work dir's latest checkpoint, continuing at iteration 1
    assert train_cli.main([*common, "--max-iters", "2", "--resume", "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert f"resumed from {first} at iteration 1" in out
    assert "iter 2/2" in out and "iter 1/2" not in out
    second = ckpt.load(work / "iter_00000002.pth")
    assert (second["epoch"], second["iteration"]) == (0, 2)
    assert [r["iter"] for r in _records(work) if r["mode"] == "train"] == [1, 2]
    changed = [
        k
        for k, v in second["model"].items()
        if v.is_floating_point() and not torch.equal(v, data["model"][k])
    ]
    assert changed  # the second step updated weights

    # the test command loads the checkpoint (weights_only) and evaluates it
    rc = test_cli.main(
        [
            *ROW,
            "--data",
            "shapes",
            "--data-root",
            str(shapes_root),
            *FAST[:7],
            "--ckpt",
            str(work / "iter_00000002.pth"),
            "--eval",
            "bbox",
        ]
    )
    assert rc == 0
    result = json.loads((work / "iter_00000002.eval.json").read_text())
    assert result["iteration"] == 2
    assert set(result["metrics"]) == {
        f"bbox_{n}"
        for n in (
            "AP",
            "AP50",
            "AP75",
            "APs",
            "APm",
            "APl",
            "AR1",
            "AR10",
            "AR100",
            "ARs",
            "ARm",
            "ARl",
        )
    }


def test_test_cli_rejects_a_foreign_checkpoint(shapes_root, tmp_path, capsys):
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    rc = test_cli.main(
        [*ROW, "--data", "shapes", "--data-root", str(shapes_root), "--ckpt", str(foreign)]
    )
    assert rc == 2
    assert "not a det_engine checkpoint" in capsys.readouterr().err
