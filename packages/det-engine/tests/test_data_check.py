"""The pre-flight data check: ``python -m det_engine.data check`` and the one training runs
first, on a COCO-format set with one planted problem of each kind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from det_engine.apps import data_check
from det_engine.apps import train as train_cli

ROW = ["retinanet", "r50", "1x", "--backbone-weights", "none"]  # shapes: from scratch
FAST = ["--device", "cpu", "--workers", "0", "--img-scale", "128", "96", "--batch-size", "1"]
KINDS = {
    "missing image": 1,
    "unreadable image": 1,
    "size mismatch": 1,
    "box outside image": 1,
    "unknown category": 1,
}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from det_data import shapes

    return shapes.prepare(tmp_path_factory.mktemp("data") / "shapes", {"train": 8, "val": 2})


def _planted(shapes_root: Path, folder: Path) -> tuple[Path, Path]:
    """A copy of the shapes train split with five problems: a truncated JPEG (image 1), a
    missing file (2), a wrong width in the annotation file (7), a box 20 px past the right
    edge (on 4) and an unknown category (on 5). Returns (annotation file, image folder)."""
    img_dir = folder / "images"
    shutil.copytree(shapes_root / "train", img_dir)
    data = json.loads((shapes_root / "annotations" / "instances_train.json").read_text())
    images = {image["id"]: image for image in data["images"]}
    first = img_dir / images[1]["file_name"]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    (img_dir / images[2]["file_name"]).unlink()
    images[7]["width"] += 7  # an image whose masks are polygons (an RLE knows its size)
    by_image = {ann["image_id"]: ann for ann in data["annotations"]}
    by_image[4]["bbox"][0] = images[4]["width"] - by_image[4]["bbox"][2] + 20
    by_image[5]["category_id"] = 42
    ann_file = folder / "instances_train.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, img_dir


def test_check_command_reports_every_problem_with_counts(shapes_root, tmp_path, capsys):
    ann_file, img_dir = _planted(shapes_root, tmp_path)
    argv = ["check", str(ann_file), "--data-root", str(img_dir), "--workers", "2"]
    assert data_check.main(argv) == 1
    out = capsys.readouterr().out
    assert "8 images, " in out and "5 problems in 5 images" in out
    for kind, count in KINDS.items():
        assert f"\n  {kind}: {count}\n" in out
    assert "category_id 42" in out and "is truncated" in out
    # a clean set
    clean = shapes_root / "annotations" / "instances_val.json"
    assert data_check.main(["check", str(clean), "--data-root", str(shapes_root / "val")]) == 0
    assert "2 images" in capsys.readouterr().out
    assert data_check.main(["check", str(tmp_path / "none.json")]) == 2
    assert "none.json does not exist" in capsys.readouterr().err


def test_python_m_det_engine_data_check_runs_the_command(shapes_root, tmp_path):
    ann_file, img_dir = _planted(shapes_root, tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "det_engine.data", "check", str(ann_file), "--data-root",
         str(img_dir), "--workers", "0"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "  unknown category: 1" in done.stdout and "  missing image: 1" in done.stdout


def test_training_stops_before_the_first_step_with_the_whole_report(shapes_root, tmp_path, capsys):
    ann_file, img_dir = _planted(shapes_root, tmp_path)
    work = tmp_path / "work"
    argv = [*ROW, "--data", str(ann_file), "--data-root", str(img_dir), *FAST, "--no-eval"]
    assert train_cli.main([*argv, "--max-iters", "1", "--work-dir", str(work)]) == 2
    captured = capsys.readouterr()
    assert "the data check found problems; training has not started" in captured.err
    for kind, count in KINDS.items():
        assert f"\n  {kind}: {count}\n" in captured.err
    assert "--skip-bad-images" in captured.err and "--skip-data-check" in captured.err
    assert "training retinanet" not in captured.out and not work.exists()


def test_skip_bad_images_trains_without_them_and_says_how_many(shapes_root, tmp_path, capsys):
    ann_file, img_dir = _planted(shapes_root, tmp_path)
    work = tmp_path / "work"
    argv = [*ROW, "--data", str(ann_file), "--data-root", str(img_dir), *FAST, "--no-eval"]
    argv += ["--max-iters", "2", "--work-dir", str(work), "--skip-bad-images"]
    assert train_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "--skip-bad-images: training without them (5 of the train images left out)" in out
    assert "training retinanet_r50_1x on " in out and "(3 images," in out
    assert (work / "iter_00000002.pth").is_file()


def test_an_image_broken_after_the_check_is_skipped_and_counted(shapes_root, tmp_path, capsys):
    # --skip-data-check stands for a file that changed after the check: only the loader
    # meets the truncated JPEG, and training goes on without it.
    img_dir = tmp_path / "images"
    shutil.copytree(shapes_root / "train", img_dir)
    data = json.loads((shapes_root / "annotations" / "instances_train.json").read_text())
    data["images"] = data["images"][:4]  # four iterations make an epoch
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] <= 4]
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    for image in (data["images"][0], data["images"][2]):  # each replaced by a readable one
        path = img_dir / image["file_name"]
        path.write_bytes(path.read_bytes()[:200])
    work = tmp_path / "work"
    argv = [*ROW, "--data", str(ann_file), "--data-root", str(img_dir), *FAST, "--no-eval"]
    argv += ["--skip-data-check", "--log-interval", "1", "--max-iters", "4"]
    assert train_cli.main([*argv, "--work-dir", str(work)]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped an unreadable image") == 2
    assert "skipped an unreadable image (2 of at most 10)" in err
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert records[-1]["skipped_images"] == 2 and records[-1]["iter"] == 4
    # beyond the limit the run stops, naming the limit
    rc = train_cli.main([*argv, "--max-skipped-images", "1", "--work-dir", str(tmp_path / "w")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "2 images could not be read during training, more than the 1 allowed" in err
