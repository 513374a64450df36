"""``python -m det_engine.quickstart`` end to end on a tiny shapes split, and its recipes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from det_engine import demo, quickstart


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_every_family_recipe_builds_a_slim_model():
    from det_backbones import build_backbone

    full = _count(build_backbone("r18"))
    for family in quickstart.FAMILIES:
        model = quickstart.build_quickstart_model(family, 3)
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
    rpn = quickstart.recipe("rpn").model.rpn
    assert rpn.anchor_scales == (4.0,)
    # The box head: two 3x3 conv (32 ch) + GroupNorm layers, then one FC of 256.
    box_head = quickstart.build_quickstart_model("faster_rcnn", 3).roi_head.bbox_head
    assert [
        (c.conv.in_channels, c.conv.out_channels, c.conv.kernel_size) for c in box_head.convs
    ] == [
        (64, 32, (3, 3)),
        (32, 32, (3, 3)),
    ]
    assert all(isinstance(c.gn, torch.nn.GroupNorm) for c in box_head.convs)
    assert [(fc.in_features, fc.out_features) for fc in box_head.fcs] == [(32 * 7 * 7, 256)]
    assert quickstart.recipe("retinanet").model.dense.octave_base_scale == 2.0
    with pytest.raises(ValueError, match="--family"):
        quickstart.recipe("yolo")


def test_data_config_uses_the_recipe_scale():
    assert quickstart.data_config("faster_rcnn").img_scale == (384, 288)
    assert quickstart.data_config("ssd").img_scale == (300, 300)


def test_multi_scale_training_draws_between_the_recipe_scales(tmp_path):
    from det_data import shapes

    root = tmp_path / "v1"
    shapes.prepare(root, splits={"train": 4, "val": 1})
    rec = quickstart.recipe()
    (_, low_short), (_, high_short) = rec.train_scales
    train, val = quickstart.shapes_datasets(rec, str(root), "faster_rcnn")
    torch.manual_seed(0)
    np.random.seed(0)
    shorts = {min(train[i % 4][1]["img_shape"][:2]) for i in range(24)}
    assert len(shorts) > 3  # drawn, not fixed
    assert all(low_short * 0.5 <= s <= high_short for s in shorts)
    h, w = val[0][1]["img_shape"][:2]
    assert max(h, w) <= rec.img_scale[0] and min(h, w) <= rec.img_scale[1]
    assert max(h, w) == rec.img_scale[0] or min(h, w) == rec.img_scale[1]


def test_amp_auto_follows_the_cpu():
    cpu = torch.device("cpu")
    assert quickstart._amp("auto", cpu) == ("bf16" if quickstart.has_fast_bf16(cpu) else None)
    assert quickstart._amp("off", cpu) is None and quickstart._amp("bf16", cpu) == "bf16"


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
    assert metrics["quickstart"] == "faster_rcnn" and metrics["iters"] == 2
    assert metrics["amp"] == "bf16"
    assert metrics["class_names"] == ["circle", "square", "triangle"]
    assert set(metrics["metrics"]) >= {"bbox_AP", "bbox_AP50", "bbox_AR100"}
    assert all(-1 <= v <= 1 for v in metrics["metrics"].values())
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
    detector, names, config = demo.load_detector(work / "iter_00000002.pth")
    assert names == ["circle", "square", "triangle"] and config["quickstart"] == "faster_rcnn"
    # The reloaded detector preprocesses an image file as the validation set did (up to
    # JPEG decoders' rounding) and carries the trained weights.
    from det_data import collate

    _, val_set = quickstart.shapes_datasets(quickstart.recipe(), str(root), "faster_rcnn")
    images, metas, _ = collate([val_set[0]])
    pixels = np.asarray(Image.open(val_set.records[0].file).convert("RGB"))
    got_images, got_metas = detector.preprocess(pixels)
    assert got_images.shape == images.shape
    assert got_metas[0]["img_shape"] == metas[0]["img_shape"]
    assert got_metas[0]["scale_factor"] == pytest.approx(metas[0]["scale_factor"])
    assert float((got_images - images).abs().mean()) < 0.02
    # The demo's model holds the checkpoint's weights (prepared for inference the same way).
    from det_engine import checkpoint as ckpt
    from det_models import Detector

    reference = quickstart.build_quickstart_model("faster_rcnn", 3)
    ckpt.load_model_weights(reference, work / "iter_00000002.pth")
    expected = Detector(reference, quickstart.data_config()).model.state_dict()
    got = detector.model.state_dict()
    assert got.keys() == expected.keys()
    for name, value in got.items():
        torch.testing.assert_close(value, expected[name], msg=name)
    result = detector.predict(pixels)
    h, w = pixels.shape[:2]
    assert float(result["boxes"][:, 2].max()) <= w and float(result["boxes"][:, 3].max()) <= h


def test_quickstart_rejects_bad_iters(capsys):
    assert quickstart.main(["--iters", "0"]) == 2
    assert "--iters must be > 0" in capsys.readouterr().err


def test_fast_rcnn_without_an_rpn_run_says_what_to_run(tmp_path, capsys):
    argv = ["--family", "fast_rcnn", "--proposals-from", str(tmp_path / "none")]
    assert quickstart.main([*argv, "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "--family rpn" in err and str(tmp_path / "none") in err


def test_shapes_zoo_table_from_eval_files(tmp_path):
    from det_engine import shapes_zoo

    runs = {
        "rpn": {"proposal_AR@300": 0.9123},
        "mask_rcnn": {"bbox_AP": 0.61234, "bbox_AP50": 0.9, "bbox_AP75": 0.7, "segm_AP": 0.55},
    }
    for family, metrics in runs.items():
        iters = quickstart.recipe(family).iters if family == "rpn" else 400
        run = {"iters": iters, "batch_size": 4, "metrics": metrics}
        run |= {"train_seconds": 120.0, "eval_seconds": 9.4}
        (tmp_path / f"quickstart_{family}").mkdir()
        (tmp_path / f"quickstart_{family}" / "eval.json").write_text(json.dumps(run))
    out = tmp_path / "MODEL_ZOO.md"
    out.write_text("# zoo\n\nintro\n")
    argv = ["--table-only", "--work-root", str(tmp_path), "--write", str(out)]
    assert shapes_zoo.main(argv) == 0
    text = out.read_text()
    assert text.startswith("# zoo\n\nintro\n")
    rows = [line for line in text.splitlines() if line.startswith("| rpn") or "mask_rcnn" in line]
    assert rows[0].split(" | ")[9] == "0.912"  # AR@300
    assert "| 0.612 | 0.900 | 0.700 | 0.550 | - |" in rows[1]
    assert "`python -m det_engine.quickstart --family mask_rcnn --iters 400`" in rows[1]
    assert "`python -m det_engine.quickstart --family rpn` |" in rows[0]  # the recipe's iters
    # Writing again replaces the section instead of adding a second one.
    assert shapes_zoo.main(argv) == 0
    assert out.read_text().count(shapes_zoo.BEGIN) == 1
