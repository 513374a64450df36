"""Pascal VOC in the train and test command lines, on a tiny VOCdevkit written here."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from det_engine import checkpoint as ckpt
from det_engine.apps import cli
from det_engine.apps import test as test_cli
from det_engine.apps import train as train_cli
from det_engine.data import VOC_SETS, DataError, build_voc
from det_engine.evaluation.loop import voc_metrics
from det_models import from_plain, zoo

ROW = ["retinanet", "r50", "1x"]
FAST = ["--device", "cpu", "--workers", "0", "--img-scale", "96", "64", "--batch-size", "1"]
OBJ = (
    "<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{b[0]}</xmin>"
    "<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
)
# VOC boxes are 1-based inclusive: (xmin, ymin, xmax, ymax) = (11, 6, 40, 30) is the
# 0-based box (10, 5, 40, 30).
IMAGES = {
    "2007": {
        "000001": ("trainval", [("dog", 0, (11, 6, 40, 30))]),
        "000002": ("trainval", [("cat", 0, (21, 11, 60, 45)), ("dog", 1, (1, 1, 15, 15))]),
        "000003": ("test", [("dog", 0, (5, 5, 30, 40))]),
        "000004": ("test", [("cat", 0, (31, 9, 62, 44)), ("cat", 1, (1, 1, 20, 20))]),
    },
    "2012": {"2012_000001": ("trainval", [("cat", 0, (3, 3, 50, 40))])},
}


def write_voc(root):
    """A VOCdevkit with 64 x 48 JPEGs, one filled rectangle per object."""
    for year, images in IMAGES.items():
        base = root / f"VOC{year}"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        lists: dict[str, list[str]] = {}
        for image_id, (image_set, objects) in images.items():
            pixels = np.full((48, 64, 3), 40, np.uint8)
            for name, _, (x1, y1, x2, y2) in objects:
                pixels[y1 - 1 : y2, x1 - 1 : x2] = (220, 60, 60) if name == "dog" else (60, 60, 220)
            Image.fromarray(pixels).save(base / "JPEGImages" / f"{image_id}.jpg")
            objs = "".join(OBJ.format(name=n, difficult=d, b=b) for n, d, b in objects)
            (base / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><size><width>64</width><height>48</height><depth>3</depth>"
                f"</size>{objs}</annotation>"
            )
            lists.setdefault(image_set, []).append(image_id)
        for image_set, ids in lists.items():
            (base / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return write_voc(tmp_path_factory.mktemp("VOCdevkit"))


def test_voc_sets_join_2007_and_2012_trainval_and_test_on_2007(voc_root, tmp_path):
    train = build_voc(str(voc_root), VOC_SETS["train"], train=True, transforms=None)
    assert [r.image_id for r in train.records] == [1, 2, "2012_000001"]
    assert len(train) == 3 and len(train.classes) == 20
    image, _, target = train[2]
    assert image.shape == (3, 48, 64)
    assert target["boxes"].tolist() == [[2.0, 2.0, 50.0, 40.0]]
    val = build_voc(str(voc_root), VOC_SETS["val"], train=False, transforms=None)
    assert [r.image_id for r in val.records] == [3, 4]

    with pytest.raises(DataError) as e:
        build_voc(str(tmp_path / "none"), VOC_SETS["train"], train=True, transforms=None)
    assert str(tmp_path / "none" / "VOC2007" / "ImageSets" / "Main" / "trainval.txt") in str(
        e.value
    )
    assert str(tmp_path / "none" / "VOC2012" / "ImageSets" / "Main" / "trainval.txt") in str(
        e.value
    )


def test_voc_metrics_ignore_difficult_objects(voc_root):
    val = build_voc(str(voc_root), VOC_SETS["val"], train=False, transforms=None)
    dog, cat = val.classes.index("dog"), val.classes.index("cat")
    perfect = [
        {"boxes": torch.tensor([[4.0, 4.0, 30.0, 40.0]]), "scores": torch.tensor([0.9]),
         "labels": torch.tensor([dog])},
        # the cat, and a confident detection of the difficult cat: ignored, not a false positive
        {"boxes": torch.tensor([[30.0, 8.0, 62.0, 44.0], [0.0, 0.0, 20.0, 20.0]]),
         "scores": torch.tensor([0.8, 0.95]), "labels": torch.tensor([cat, cat])},
    ]  # fmt: skip
    assert voc_metrics(perfect, val) == {"mAP": 1.0, "AP_cat": 1.0, "AP_dog": 1.0}
    # the same box called a dog is a false positive ranked first: dog AP drops
    wrong = [perfect[0], {**perfect[1], "labels": torch.tensor([cat, dog])}]
    metrics = voc_metrics(wrong, val)
    assert metrics["AP_cat"] == 1.0 and metrics["AP_dog"] == 0.5  # precision 1/2 at every recall
    assert metrics["mAP"] == 0.75


def test_train_and_test_on_voc(voc_root, tmp_path, capsys):
    work = tmp_path / "work"
    common = [*ROW, "--data", "voc", "--data-root", str(voc_root), *FAST[:-2]]
    argv = [*common, "--batch-size", "1", "--work-dir", str(work), "--max-iters", "1"]
    rc = train_cli.main([*argv, "--no-eval", "--backbone-weights", "none"])
    assert rc == 0
    assert "training retinanet_r50_1x on voc (3 images" in capsys.readouterr().out
    data = ckpt.load(work / "iter_00000001.pth")
    run = from_plain(data["run"])
    assert run.model.num_classes == 20 and run.dataset == "voc"
    assert run.class_names[:3] == ("aeroplane", "bicycle", "bird")
    assert run.data.img_scale == (96, 64)
    assert not (work / "eval.json").exists()

    rc = test_cli.main([*common, "--ckpt", str(work / "iter_00000001.pth")])
    assert rc == 0
    assert "mAP:" in capsys.readouterr().out
    metrics = json.loads((work / "iter_00000001.eval.json").read_text())["metrics"]
    # scored on VOC2007 test: only its classes (cat, dog) can have an AP
    assert set(metrics) <= {"mAP", "AP_cat", "AP_dog"} and "mAP" in metrics
    assert 0.0 <= metrics["mAP"] <= 1.0

    rc = test_cli.main([*common, "--ckpt", str(work / "iter_00000001.pth"), "--eval", "bbox"])
    assert rc == 2 and "scored with VOC mAP" in capsys.readouterr().err


def test_missing_voc_names_where_it_looked(tmp_path, capsys):
    root = tmp_path / "VOCdevkit"
    (root / "VOC2007" / "ImageSets" / "Main").mkdir(parents=True)
    (root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").write_text("")
    argv = [*ROW, "--data", "voc", "--data-root", str(root), "--work-dir", "w"]
    rc = train_cli.main([*argv, "--backbone-weights", "none"])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(root / "VOC2007" / "ImageSets" / "Main" / "test.txt") in err

    args = argparse.Namespace(data="voc", data_root=None, img_scale=None)
    with pytest.raises(DataError, match=r"data/VOCdevkit/VOC2007/ImageSets/Main/trainval\.txt"):
        cfg = zoo.get(*ROW)
        cli.build_dataset(args, "voc", cfg.data, "retinanet", "train", train=True)
