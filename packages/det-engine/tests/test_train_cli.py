"""The train and test command lines on a tiny shapes dataset (CPU)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from dist_env import free_port, set_torchrun_env

from det_engine import checkpoint as ckpt
from det_engine.apps import test as test_cli
from det_engine.apps import train as train_cli
from det_models import from_plain

ROW = ["retinanet", "r50", "1x"]
# The rows' ImageNet weights are not downloaded in tests; a tiny network fits none of them.
NO_WEIGHTS = ["--backbone-weights", "none"]
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
    argv = [*ROW, *NO_WEIGHTS, "--data-root", str(root), "--work-dir", str(tmp_path / "w")]
    rc = train_cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert str(root / "annotations" / "instances_train2017.json") in err
    assert "--data shapes" in err
    assert not (tmp_path / "w").exists()


def test_unknown_annotation_file_is_an_error(tmp_path, capsys):
    rc = train_cli.main([*ROW, *NO_WEIGHTS, "--data", str(tmp_path / "ann.json")])
    assert rc == 2
    assert "ann.json" in capsys.readouterr().err


def _rank_without_data_worker(rank, world_size, port, shapes_root, out_dir):
    set_torchrun_env(rank, world_size, port)
    torch.set_num_threads(1)
    root = shapes_root if rank == 0 else os.path.join(out_dir, "not-mounted")
    ann = os.path.join(root, "annotations", "instances_train.json")
    argv = [*ROW, *NO_WEIGHTS, "--data", ann, "--data-root", os.path.join(root, "train"), *FAST]
    argv.append("--no-eval")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = train_cli.main([*argv, "--work-dir", os.path.join(out_dir, "work")])
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(f"{rc}\n{err.getvalue()}")
    torch.distributed.destroy_process_group()


def test_a_rank_that_cannot_see_the_data_stops_every_rank_with_one_message(shapes_root, tmp_path):
    args = (2, free_port(), str(shapes_root), str(tmp_path))
    mp.spawn(_rank_without_data_worker, args=args, nprocs=2, join=True)
    rc0, err0 = (tmp_path / "rank0.txt").read_text().split("\n", 1)
    rc1, err1 = (tmp_path / "rank1.txt").read_text().split("\n", 1)
    assert (rc0, rc1) == ("2", "2")  # both stop, rank 0 although its data is there
    error = err0.splitlines()[-1]  # after the progress of rank 0's data check
    assert error.startswith("error: rank 1: data source ")
    assert "not-mounted" in error and "rank 0" not in err0
    assert err0.count("error:") == 1
    assert err1 == ""  # one message, from rank 0
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_train_writes_checkpoint_log_eval_then_resume_and_test(shapes_root, tmp_path, capsys):
    work = tmp_path / "work"
    common = [*ROW, *NO_WEIGHTS, "--data", "shapes", "--data-root", str(shapes_root), *FAST]
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
    run = from_plain(data["run"])  # the run record: the model as built, its data pipeline
    assert run.model.num_classes == 3 and run.class_names == ("circle", "square", "triangle")
    assert run.key == ("retinanet", "r50", "1x", None) and run.dataset == "shapes"
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
    assert f"checkpoint {foreign} holds no run record" in capsys.readouterr().err


def _as_2019_rpn(state: dict) -> dict:
    """Our R-50 FPN RPN's state dict in the 2019 zoo's layout (mmdetection v0.6 key names)."""
    out = {}
    for key, value in state.items():
        for ours, theirs in (
            ("neck.output_convs.", "neck.fpn_convs."),
            ("neck.lateral_convs.", "neck.lateral_convs."),
        ):
            if key.startswith(ours):
                n, rest = key[len(ours) :].split(".", 1)
                key = f"{theirs}{n}.conv.{rest}"
        key = key.replace("rpn.conv.", "rpn_head.rpn_conv.")
        key = key.replace("rpn.cls.", "rpn_head.rpn_cls.").replace("rpn.reg.", "rpn_head.rpn_reg.")
        out[key] = value
    return out


def test_test_cli_evaluates_a_released_2019_checkpoint(shapes_root, tmp_path, capsys):
    from det_models import zoo

    torch.manual_seed(0)
    released = tmp_path / "rpn_r50_fpn_1x_20181010.pth"
    state = _as_2019_rpn(zoo.build("rpn", "r50", "1x").state_dict())
    torch.save({"state_dict": state, "meta": {"epoch": 12}}, released)
    args = ["rpn", "r50", "1x", "--data", "shapes", "--data-root", str(shapes_root), *FAST[:7]]
    out = tmp_path / "eval.json"
    assert test_cli.main([*args, "--ckpt", str(released), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a 2019 zoo checkpoint, converted; tested with its conventions" in printed
    metrics = json.loads(out.read_text())
    assert metrics["iteration"] is None and "proposal_AR@1000" in metrics["metrics"]
    # A 2019 checkpoint of another row: the keys that do not fit, named.
    rc = test_cli.main(["faster_rcnn", *args[1:], "--ckpt", str(released), "--out", str(out)])
    assert rc == 2
    assert "missing" in capsys.readouterr().err


# Every family on the shapes set, one tiny iteration each: narrow backbones (ResNet-50 at a
# quarter of its width, VGG16 at an eighth) and small images; SSD at its own square input.
FAMILY_ROWS = [
    ("rpn", "r50", "1x"),
    ("faster_rcnn", "r50", "1x"),
    ("mask_rcnn", "r50", "1x"),
    ("cascade_rcnn", "r50", "1x"),
    ("cascade_mask_rcnn", "r50", "1x"),
    ("retinanet", "r50", "1x"),
    ("ssd300", "vgg16", "120e"),
    ("ssd512", "vgg16", "120e"),
]


def _data(shapes_root) -> list[str]:
    """The data arguments of train and test (the test command takes the checkpoint's scale)."""
    return ["--data", "shapes", "--data-root", str(shapes_root), *FAST[:4]]


def _narrow(model: str) -> list[str]:
    """``--set`` overrides that make the row's network tiny (narrow, few sampled RoIs)."""
    if model.startswith("ssd"):
        return ["model.backbone.base_channels=8"]
    sets = ["model.backbone.base_channels=16", "model.neck.out_channels=32"]
    if model == "retinanet":
        return [*sets, "model.dense.feat_channels=32", "model.dense.stacked_convs=1"]
    if model != "fast_rcnn":
        sets.append("model.rpn.feat_channels=32")
    if model != "rpn":
        sets += ["model.roi.fc_channels=64", "model.roi.conv_channels=32"]
        sets.append("model.roi.stages.0.sampler.num=64")
    return sets


def _tiny(shapes_root, model: str) -> list[str]:
    """The training arguments of a tiny run of ``model``."""
    sets = [arg for item in _narrow(model) for arg in ("--set", item)]
    if model.startswith("ssd"):
        return [*_data(shapes_root), *NO_WEIGHTS, *sets]
    return [*_data(shapes_root), *NO_WEIGHTS, "--img-scale", "96", "64", *sets]


@pytest.mark.parametrize("row", FAMILY_ROWS, ids=[row[0] for row in FAMILY_ROWS])
def test_every_family_trains_and_evaluates_on_shapes(row, shapes_root, tmp_path, capsys):
    work = tmp_path / "work"
    argv = [*row, *_tiny(shapes_root, row[0]), "--batch-size", "2", "--max-iters", "1"]
    assert train_cli.main([*argv, "--work-dir", str(work)]) == 0
    result = json.loads((work / "eval.json").read_text())
    metrics = result["metrics"]
    expected = {
        "rpn": "proposal_AR@1000",
        "mask_rcnn": "segm_AP",
        "cascade_mask_rcnn": "segm_AP",
    }.get(row[0], "bbox_AP")
    assert expected in metrics
    size = {"ssd300": (300, 300), "ssd512": (512, 512)}.get(row[0], (96, 64))
    run = from_plain(ckpt.load(result["checkpoint"])["run"])
    assert run.data.img_scale == size and run.overrides == tuple(_narrow(row[0]))
    # the test command rebuilds the narrow model from the checkpoint's run record alone
    rc = test_cli.main([*_data(shapes_root), "--ckpt", result["checkpoint"]])
    assert rc == 0
    assert "metrics written to" in capsys.readouterr().out


def test_the_schedule_config_is_read_whole(shapes_root, tmp_path):
    work = tmp_path / "work"
    argv = ["rpn", "r50", "1x", *_tiny(shapes_root, "rpn"), "--batch-size", "1"]
    argv += ["--set", "schedule.warmup=None", "--set", "schedule.lr_gamma=0.5"]
    argv += ["--set", "schedule.lr_steps=[1]", "--set", "schedule.dataset_repeat=2"]
    argv += ["--max-iters", "5", "--no-eval", "--work-dir", str(work), "--log-interval", "1"]
    assert train_cli.main(argv) == 0
    lrs = [r["lr"] for r in _records(work) if r["mode"] == "train"]
    base = 0.02 / 16
    # no warmup; 4 images per pass, the step after epoch 1 of a set repeated twice: pass 2
    assert lrs == pytest.approx([base] * 5)
    state = ckpt.load(work / "iter_00000005.pth")
    assert state["scheduler"]["steps"] == [2] and state["scheduler"]["gamma"] == 0.5
    assert state["scheduler"]["warmup"] is None
    assert state["epoch"] == 1  # the first pass of 4 iterations completed


def test_data_overrides_reach_the_dataset(shapes_root):
    from det_engine.apps.cli import build_dataset, row_data_config
    from det_engine.apps.train import parse_args
    from det_models import apply_overrides, zoo

    def dataset_of(args, cfg, split, train):
        source, data_cfg = row_data_config(args, cfg)
        return build_dataset(args, source, data_cfg, cfg.model.family, split, train)

    args = parse_args(["retinanet", "r50", "1x", *_tiny(shapes_root, "retinanet")])
    cfg = apply_overrides(zoo.get("retinanet", "r50", "1x"), ["data.flip_ratio=1.0"])
    dataset = dataset_of(args, cfg, "train", train=True)
    assert all(dataset[i][1]["flip"] for i in range(len(dataset)))
    # A scale set with --set data.img_scale is not replaced by the shapes set's own.
    cfg = apply_overrides(zoo.get("retinanet", "r50", "1x"), ["data.img_scale=(80, 40)"])
    args = parse_args(["retinanet", "r50", "1x", *_data(shapes_root)])
    assert max(dataset_of(args, cfg, "val", train=False)[0][1]["img_shape"][:2]) <= 80
    # An SSD row trains with its augmentation at its square, not the keep-ratio pipeline.
    args = parse_args(["ssd300", "vgg16", "120e", *_data(shapes_root)])
    dataset = dataset_of(args, zoo.get("ssd300", "vgg16", "120e"), "train", train=True)
    names = [type(t).__name__ for t in dataset.transforms.transforms]
    assert names[:3] == ["PhotoMetricDistortion", "Expand", "MinIoURandomCrop"]
    assert dataset[0][0].shape == (3, 300, 300)


def test_fast_rcnn_trains_on_proposals_the_test_command_writes(shapes_root, tmp_path, capsys):
    tiny = _tiny(shapes_root, "fast_rcnn")
    fast = ["fast_rcnn", "r50", "1x", *tiny, "--batch-size", "2", "--max-iters", "1"]
    fast_test = ["fast_rcnn", "r50", "1x", *_data(shapes_root)]
    rpn_test = ["rpn", "r50", "1x", *_data(shapes_root)]

    # Without proposal files it says what to pass and how to make them.
    assert train_cli.main([*fast, "--work-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "--proposals-train FILE and --proposals-test FILE" in err
    assert "python -m det_engine.test rpn r50 1x --ckpt RPN_CKPT --data shapes" in err
    assert not (tmp_path / "none").exists()

    # An RPN, and its proposals of both splits from the test command (.npz and JSON).
    rpn = ["rpn", "r50", "1x", *_tiny(shapes_root, "rpn")]
    argv = [*rpn, "--max-iters", "1", "--no-eval", "--work-dir", str(tmp_path / "rpn")]
    assert train_cli.main(argv) == 0
    rpn_ckpt = str(tmp_path / "rpn" / "iter_00000001.pth")
    train_props, val_props = tmp_path / "train.npz", tmp_path / "val.json"
    rc = test_cli.main(
        [*rpn_test, "--ckpt", rpn_ckpt, "--split", "train", "--proposals-out", str(train_props)]
    )
    assert rc == 0
    assert test_cli.main([*rpn_test, "--ckpt", rpn_ckpt, "--proposals-out", str(val_props)]) == 0
    assert (tmp_path / "rpn" / "iter_00000001.train.eval.json").is_file()
    with np.load(train_props, allow_pickle=False) as members:
        by_id = {int(name): members[name] for name in members.files}
    annotations = json.loads((shapes_root / "annotations" / "instances_train.json").read_text())
    assert set(by_id) == {image["id"] for image in annotations["images"]}
    for image in annotations["images"]:
        boxes = by_id[image["id"]]
        assert boxes.ndim == 2 and boxes.shape[1] == 5 and len(boxes) > 0
        # original-image pixels (the RPN saw the image at 96 x 64)
        assert boxes[:, 2].max() <= image["width"] and boxes[:, 3].max() <= image["height"]
    assert len(json.loads(val_props.read_text())) == 2

    # Fast R-CNN trains on them and is evaluated on the test proposals.
    props = ["--proposals-train", str(train_props), "--proposals-test", str(val_props)]
    assert train_cli.main([*fast, *props, "--work-dir", str(tmp_path / "fast")]) == 0
    assert "bbox_AP" in json.loads((tmp_path / "fast" / "eval.json").read_text())["metrics"]
    fast_ckpt = str(tmp_path / "fast" / "iter_00000001.pth")
    rc = test_cli.main([*fast_test, "--ckpt", fast_ckpt, "--proposals-test", str(val_props)])
    assert rc == 0

    # The 2019 zoo's files: a list of arrays in dataset order (the JSON's image order).
    legacy = tmp_path / "rpn_r50_fpn_1x_train.pkl"
    legacy.write_bytes(pickle.dumps([by_id[image["id"]] for image in annotations["images"]]))
    argv = [*fast, "--proposals-train", str(legacy), "--no-eval"]
    assert train_cli.main([*argv, "--work-dir", str(tmp_path / "legacy")]) == 0

    # Proposals are only written by proposal models, and only read by Fast R-CNN.
    rc = test_cli.main([*fast_test, "--ckpt", fast_ckpt, "--proposals-out", "x.npz"])
    assert rc == 2 and "proposals come from an RPN" in capsys.readouterr().err
    # No pickle is written any more (a .pkl is only read, through det-io's allow-list).
    rc = test_cli.main([*rpn_test, "--ckpt", rpn_ckpt, "--proposals-out", "x.pkl"])
    assert rc == 2 and "name a .npz, .json or .pt file" in capsys.readouterr().err
    rc = train_cli.main([*rpn, "--proposals-train", str(train_props), "--work-dir", "w"])
    assert rc == 2 and "rpn takes no precomputed proposals" in capsys.readouterr().err
