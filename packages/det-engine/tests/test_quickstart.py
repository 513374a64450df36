"""``python -m det_engine.quickstart`` end to end on a tiny shapes split, and its recipes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from det_engine import checkpoint as ckpt
from det_engine import recipes, runtime
from det_engine.apps import demo, quickstart
from det_engine.run import run_datasets
from det_engine.visualize import read_rgb
from det_models import build_model, from_plain


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_every_family_recipe_builds_a_slim_model():
    from det_backbones import build_backbone

    full = _count(build_backbone("r18"))
    for family in recipes.QUICKSTART_FAMILIES:
        model = build_model(recipes.quickstart_model(family))
        if family == "ssd":
            # A quarter of VGG16's width (1/16 of the weights) with BatchNorm.
            vgg16 = _count(build_backbone("vgg16-ssd300"))
            assert _count(model.backbone) == pytest.approx(vgg16 / 16, rel=0.01)
            assert model.backbone.norm == "BN"
            continue
        # Half the width: a quarter of the weights of every conv.
        assert _count(model.backbone) == pytest.approx(full / 4, rel=0.01), family
        assert model.backbone.conv1.out_channels == 32
        assert all(p.requires_grad for p in model.backbone.parameters())  # nothing frozen
        model.train()
        assert all(m.training for m in model.backbone.modules())  # BN statistics train
    rpn = recipes.quickstart_model("rpn").rpn
    assert rpn.anchor_scales == (4.0,)
    # The box head: two 3x3 conv (32 ch) + GroupNorm layers, then one FC of 256.
    box_head = build_model(recipes.quickstart_model("faster_rcnn")).roi_head.bbox_head
    assert [
        (c.conv.in_channels, c.conv.out_channels, c.conv.kernel_size) for c in box_head.convs
    ] == [
        (64, 32, (3, 3)),
        (32, 32, (3, 3)),
    ]
    assert all(isinstance(c.gn, torch.nn.GroupNorm) for c in box_head.convs)
    assert [(fc.in_features, fc.out_features) for fc in box_head.fcs] == [(32 * 7 * 7, 256)]
    assert recipes.quickstart_model("retinanet").dense.octave_base_scale == 2.0
    with pytest.raises(ValueError, match="family must be one of"):
        recipes.quickstart_model("yolo")


def test_data_config_uses_the_recipe_scale():
    assert recipes.quickstart_data("faster_rcnn").img_scale == (384, 288)
    assert recipes.quickstart_data("ssd").img_scale == (300, 300)
    run = recipes.quickstart_run("mask_rcnn", seed=3)
    assert run.data.with_mask and run.model.roi.with_mask and run.seed == 3
    assert (run.schedule.optimizer, run.schedule.lr_policy) == ("adamw", "cosine")
    assert run.batch_per_gpu == run.schedule.batch_size == 8  # the lr is used unscaled


def test_multi_scale_training_draws_between_the_recipe_scales(tmp_path):
    from det_data import shapes

    root = tmp_path / "v1"
    shapes.prepare(root, splits={"train": 4, "val": 1})
    run = recipes.quickstart_run()
    (_, low_short), (_, high_short) = run.data.train_scales
    train, val = run_datasets(run.data, "shapes", str(root), check=False)
    torch.manual_seed(0)
    np.random.seed(0)
    shorts = {min(train[i % 4][1]["img_shape"][:2]) for i in range(24)}
    assert len(shorts) > 3  # drawn, not fixed
    assert all(low_short * 0.5 <= s <= high_short for s in shorts)
    h, w = val[0][1]["img_shape"][:2]
    assert max(h, w) <= run.data.img_scale[0] and min(h, w) <= run.data.img_scale[1]
    assert max(h, w) == run.data.img_scale[0] or min(h, w) == run.data.img_scale[1]


def test_amp_auto_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, None)):
        monkeypatch.setattr(runtime, "has_fast_bf16", lambda device, native=native: native)
        assert runtime.resolve_amp("auto", cpu) == expected
        assert runtime.resolve_amp("off", cpu) is None and runtime.resolve_amp(None, cpu) is None
        assert runtime.resolve_amp("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        runtime.resolve_amp("fp16", cpu)


def test_fast_bf16_is_read_from_the_cpu_probes(monkeypatch):
    cpu = torch.device("cpu")
    for avx512_bf16, amx, expected in (
        (False, False, False),
        (True, False, True),
        (False, True, True),
    ):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert runtime.has_fast_bf16(cpu) is expected


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from det_data import shapes

    root = tmp_path_factory.mktemp("shapes") / "v1"
    shapes.prepare(root, splits={"train": 8, "val": 4})
    work = tmp_path_factory.mktemp("work")
    argv = ["--iters", "2", "--work-dir", str(work), "--data-root", str(root)]
    argv += ["--workers", "0", "--log-interval", "1", "--num-pictures", "4", "--amp", "bf16"]
    assert quickstart.main(argv) == 0
    return root, work


def test_quickstart_writes_metrics_pictures_curves_and_checkpoint(run, capsys):
    root, work = run
    metrics = json.loads((work / "eval.json").read_text())
    assert metrics["run"] == "quickstart_faster_rcnn" and metrics["iterations"] == 2
    assert metrics["images_per_iteration"] == 8  # the recipe's batch, recorded
    assert metrics["amp"] == "bf16" and metrics["budget_seconds"] is None
    run_record = from_plain(ckpt.load(work / "iter_00000002.pth")["run"])
    assert run_record.class_names == ("circle", "square", "triangle")
    assert run_record.schedule.max_iters == 2 and run_record.amp == "bf16"
    assert set(metrics["metrics"]) >= {"bbox_AP", "bbox_AP50", "bbox_AR100"}
    # Evaluated (COCOeval writes -1 where nothing was scored), and AP50 bounds AP from above.
    scores = metrics["metrics"]
    assert 0 <= scores["bbox_AP"] <= scores["bbox_AP50"] <= 1 and 0 <= scores["bbox_AR100"] <= 1
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("mode") == "train"]
    assert [r["iter"] for r in train] == [1, 2]
    assert any(r.get("mode") == "val" for r in records)
    # 4 validation images, 3 per row: 2 rows of cells as large as the largest image.
    sizes = [Image.open(p).size for p in sorted((root / "val").glob("*.jpg"))]
    width, height = max(w for w, _ in sizes), max(h for _, h in sizes)
    assert Image.open(work / "detections.png").size == (3 * width + 8, 2 * height + 4)
    assert Image.open(work / "curves.png").format == "PNG"
    assert (work / "iter_00000002.pth").is_file()


def test_demo_reloads_the_quickstart_checkpoint(run):
    root, work = run
    detector, names, run_record = demo.load_detector(work / "iter_00000002.pth")
    assert names == ["circle", "square", "triangle"] and run_record.recipe == "quickstart"
    # The reloaded detector preprocesses an image file as the validation set did (up to
    # JPEG decoders' rounding) and carries the trained weights.
    from det_data import collate

    _, val_set = run_datasets(recipes.quickstart_data(), "shapes", str(root), check=False)
    images, metas, _ = collate([val_set[0]])
    pixels = read_rgb(val_set.records[0].file)  # as the demo reads it
    got_images, got_metas = detector.preprocess(pixels)
    assert got_metas[0]["img_shape"] == metas[0]["img_shape"]
    assert got_metas[0]["scale_factor"] == pytest.approx(metas[0]["scale_factor"])
    assert torch.equal(got_images, images)  # the pixels evaluation saw, bit for bit
    # The demo's model holds the checkpoint's weights (prepared for inference the same way).
    from det_models import Detector

    reference = build_model(recipes.quickstart_model("faster_rcnn"))
    ckpt.load_model_weights(reference, work / "iter_00000002.pth")
    expected = Detector(reference, recipes.quickstart_data()).model.state_dict()
    got = detector.model.state_dict()
    assert got.keys() == expected.keys()
    for name, value in got.items():
        torch.testing.assert_close(value, expected[name], msg=name)
    result = detector.predict(pixels)
    h, w = pixels.shape[:2]
    assert float(result["boxes"][:, 2].max()) <= w and float(result["boxes"][:, 3].max()) <= h


def test_the_test_command_evaluates_the_quickstart_checkpoint(run):
    from det_engine.apps import test as test_cli

    root, work = run
    argv = ["--ckpt", str(work), "--data-root", str(root)]  # a work dir: its latest checkpoint
    assert test_cli.main([*argv, "--workers", "0"]) == 0  # data: shapes, from the run record
    result = json.loads((work / "iter_00000002.eval.json").read_text())
    trained = json.loads((work / "eval.json").read_text())["metrics"]
    assert result["run"] == "quickstart_faster_rcnn" and result["data"] == "shapes"
    assert result["metrics"]["bbox_AP"] == pytest.approx(trained["bbox_AP"])


def test_quickstart_without_matplotlib_says_so_first_and_ends_cleanly(
    run, tmp_path, monkeypatch, capsys
):
    root, _ = run
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    work = tmp_path / "work"
    argv = ["--iters", "1", "--work-dir", str(work), "--data-root", str(root)]
    assert quickstart.main([*argv, "--workers", "0", "--num-pictures", "1"]) == 0
    out = capsys.readouterr().out
    note = "note: matplotlib is not installed: the run will skip curves.png"
    assert out.startswith(note) and out.index(note) < out.index("training quickstart_faster_rcnn")
    assert "curves:     skipped (matplotlib is not installed: pip install matplotlib" in out
    assert (work / "eval.json").is_file() and (work / "detections.png").is_file()
    assert not (work / "curves.png").exists()


def test_quickstart_rejects_bad_iters_and_budgets(capsys):
    assert quickstart.main(["--iters", "0"]) == 2
    assert "--iters must be > 0" in capsys.readouterr().err
    assert quickstart.main(["--budget", "soon"]) == 2
    assert "--budget: duration 'soon': expected a positive duration" in capsys.readouterr().err


def test_fast_rcnn_without_an_rpn_run_says_what_to_run(tmp_path, capsys):
    argv = ["--family", "fast_rcnn", "--proposals-from", str(tmp_path / "none")]
    assert quickstart.main([*argv, "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "--family rpn" in err and str(tmp_path / "none") in err


def test_shapes_zoo_table_from_eval_files(tmp_path):
    from det_engine.apps import shapes_zoo

    runs = {
        "rpn": {"proposal_AR@300": 0.9123},
        "mask_rcnn": {"bbox_AP": 0.61234, "bbox_AP50": 0.9, "bbox_AP75": 0.7, "segm_AP": 0.55},
    }
    for family, metrics in runs.items():
        run = {"metrics": metrics, "train_seconds": 120.0, "eval_seconds": 9.4}
        if family == "rpn":  # within the default budget, the batch recorded
            run |= {"iterations": 1200, "budget_seconds": 600.0, "seconds_per_iteration": 0.1}
            run |= {"images_per_iteration": 4}
        else:
            run |= {"iterations": 400, "budget_seconds": None, "seconds_per_iteration": 0.3}
        (tmp_path / f"quickstart_{family}").mkdir()
        (tmp_path / f"quickstart_{family}" / "eval.json").write_text(json.dumps(run))
    out = tmp_path / "MODEL_ZOO.md"
    out.write_text("# zoo\n\nintro\n")
    argv = ["--table-only", "--work-root", str(tmp_path), "--write", str(out)]
    assert shapes_zoo.main(argv) == 0
    text = out.read_text()
    assert text.startswith("# zoo\n\nintro\n")
    rows = [line for line in text.splitlines() if line.startswith("| rpn") or "mask_rcnn" in line]
    assert rows[0].split(" | ")[10] == "0.912"  # AR@300
    assert "| 1200 x 4 | 0.10 | 2.0 | 9 |" in rows[0]
    assert "| 0.612 | 0.900 | 0.700 | 0.550 | - |" in rows[1]
    assert "| 400 x 8 |" in rows[1]  # no batch in the file: the recipe's
    assert "`python -m det_engine.quickstart --family mask_rcnn --iters 400`" in rows[1]
    assert "`python -m det_engine.quickstart --family rpn` |" in rows[0]  # the default budget
    # Writing again replaces the section instead of adding a second one.
    assert shapes_zoo.main(argv) == 0
    assert out.read_text().count(shapes_zoo.BEGIN) == 1


def test_a_budget_plans_the_run_from_its_step_time(run, tmp_path, capsys):
    root, _ = run
    work = tmp_path / "budget"
    argv = ["--budget", "40s", "--work-dir", str(work), "--data-root", str(root)]
    argv += ["--workers", "0", "--num-pictures", "1", "--amp", "off"]
    assert quickstart.main(argv) == 0
    out = capsys.readouterr().out
    assert "a budget of 0.666667 min" in out and "plan: about " in out
    result = json.loads((work / "eval.json").read_text())
    assert result["budget_seconds"] == 40.0 and result["iterations"] > 0
    record = from_plain(ckpt.load(ckpt.latest(work))["run"])
    assert record.schedule.max_iters == result["iterations"]  # the length it was given
