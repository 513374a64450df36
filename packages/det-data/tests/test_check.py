"""The pre-flight check of a COCO-format set: every planted problem reported at once."""

import json

import numpy as np
import pytest
import torch
from coco_fixtures import write_coco
from PIL import Image

from det_data import CocoDataset, check_coco
from det_data.check import check_image


def _plant_problems(root):
    """The fixture's set with one problem of each kind a user meets; returns its files."""
    ann_file, img_dir = write_coco(root)
    data = json.loads(ann_file.read_text())
    rng = np.random.default_rng(1)
    # image 6: a JPEG cut in half (a download that stopped)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(img_dir / "6.jpg")
    whole = (img_dir / "6.jpg").read_bytes()
    (img_dir / "6.jpg").write_bytes(whole[: len(whole) // 2])
    data["images"].append({"id": 6, "file_name": "6.jpg", "width": 48, "height": 40})
    # image 7: named but not there
    data["images"].append({"id": 7, "file_name": "gone.png", "width": 10, "height": 10})
    # image 3: annotated as 65 wide, the file is 64 wide
    data["images"][2]["width"] = 65
    anns = data["annotations"]
    # on image 1 (64 x 48): a box reaching 16 px past the right edge, an unknown category,
    # a polygon of 5 numbers; on image 4: a box of NaNs
    anns.append({"id": 90, "image_id": 1, "category_id": 1, "bbox": [50, 10, 30, 10]})
    anns.append({"id": 91, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5]})
    polygon = {"segmentation": [[1, 1, 5, 1, 5]]}
    anns.append({"id": 92, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], **polygon})
    anns.append({"id": 93, "image_id": 4, "category_id": 1, "bbox": [1, float("nan"), 2, 2]})
    ann_file.write_text(json.dumps(data))
    return ann_file, img_dir


def test_the_fixture_set_is_clean(tmp_path):
    report = check_coco(*write_coco(tmp_path))
    assert report.ok and report.problems == [] and report.counts() == {}
    assert (report.num_images, report.num_annotations) == (5, 7)
    assert report.format().endswith("5 images, 7 annotations: no problems found")


@pytest.mark.parametrize("workers", [0, 2])
def test_every_planted_problem_is_reported_at_once(tmp_path, workers):
    ann_file, img_dir = _plant_problems(tmp_path)
    progress = []
    report = check_coco(ann_file, img_dir, workers=workers, progress=lambda *p: progress.append(p))
    assert progress == [(done, 7) for done in range(1, 8)]  # every image decoded once
    assert report.counts() == {
        "missing image": 1,
        "unreadable image": 1,
        "size mismatch": 1,
        "bad box": 1,
        "box outside image": 1,
        "unknown category": 1,
        "bad mask": 1,
    }
    assert report.bad_image_ids() == {1, 3, 4, 6, 7}
    by_kind = {p.kind: p for p in report.problems}
    assert by_kind["missing image"].message == f"image id 7: {img_dir / 'gone.png'} does not exist"
    assert by_kind["unreadable image"].image_id == 6
    assert "6.jpg cannot be decoded (image file is truncated" in by_kind["unreadable image"].message
    assert by_kind["size mismatch"].message.endswith(
        "000003.png is 64x64 but the annotation file says 65x64"
    )
    assert by_kind["box outside image"].message == (
        "annotation id 90 (image id 1): bbox [50, 10, 30, 10] leaves the 64x48 image"
    )
    assert (
        "annotation id 91 (image id 1) has category_id 99, not among the categories [1, 3, 7]"
        in (by_kind["unknown category"].message)
    )
    assert "annotation id 92 (image id 1): a polygon has 5 coordinates" in (
        by_kind["bad mask"].message
    )
    assert "annotation id 93 (image id 4): bbox [1, nan, 2, 2] is not four finite" in (
        by_kind["bad box"].message
    )
    text = report.format()
    assert text.splitlines()[0].endswith("7 images, 11 annotations: 7 problems in 5 images")
    assert "\n  missing image: 1\n  unreadable image: 1\n  size mismatch: 1\n" in text


def test_format_lists_a_limited_number_per_kind(tmp_path):
    ann_file, img_dir = write_coco(tmp_path)
    data = json.loads(ann_file.read_text())
    for i in range(5):
        data["annotations"].append(
            {"id": 100 + i, "image_id": 1, "category_id": 42, "bbox": [1, 1, 2, 2]}
        )
    ann_file.write_text(json.dumps(data))
    text = check_coco(ann_file, img_dir).format(limit=2)
    assert "  unknown category: 5" in text
    assert text.count("  - unknown category: annotation id") == 2
    assert "  - unknown category: ... and 3 more" in text


def test_rle_size_and_counts_are_checked(tmp_path):
    ann_file, img_dir = write_coco(tmp_path)
    data = json.loads(ann_file.read_text())
    data["annotations"][3]["segmentation"]["size"] = [40, 60]  # image 2 is 60 high, 40 wide
    data["annotations"][4]["segmentation"]["counts"][-1] += 1
    ann_file.write_text(json.dumps(data))
    messages = [p.message for p in check_coco(ann_file, img_dir).problems]
    assert messages == [
        "annotation id 20 (image id 2): RLE size [40, 60] is not the image's [height, width] "
        "[60, 40]",
        "annotation id 21 (image id 2): RLE counts add up to 2401, not 60 x 40 pixels",
    ]


def test_unusable_annotation_files_are_errors_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.json does not exist"):
        check_coco(tmp_path / "nope.json", tmp_path)
    (tmp_path / "a.json").write_text("{")
    with pytest.raises(ValueError, match=r"a\.json is not valid JSON"):
        check_coco(tmp_path / "a.json", tmp_path)


def test_check_image_reads_pngs_to_the_end(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 9, 3), np.uint8) + 7).save(path)
    assert check_image(str(path), 9, 8) is None
    path.write_bytes(path.read_bytes()[:-30])
    kind, message = check_image(str(path), 9, 8)
    assert kind == "unreadable image" and str(path) in message


def test_bad_images_can_be_left_out_of_the_dataset(tmp_path):
    ann_file, img_dir = _plant_problems(tmp_path)
    with pytest.raises(ValueError, match="category_id 99"):
        CocoDataset(ann_file, img_dir, train=False)
    bad = check_coco(ann_file, img_dir).bad_image_ids()
    ds = CocoDataset(ann_file, img_dir, train=False, exclude_ids=bad)
    assert [r.image_id for r in ds.records] == [2, 5]
    for index in range(len(ds)):
        ds[index]  # every image left decodes


def test_an_image_unreadable_mid_training_is_replaced_and_named(tmp_path):
    ann_file, img_dir = write_coco(tmp_path)
    ds = CocoDataset(ann_file, img_dir, train=False)
    (img_dir / "000002.png").write_bytes(b"not a png any more")
    with pytest.raises(ValueError, match=r"000002\.png.*image id 2"):
        ds[1]
    ds.skip_unreadable = True
    image, meta, _ = ds[1]
    assert meta["image_id"] == 3 and image.shape == (3, 64, 64)  # the next image instead
    (skipped,) = meta["skipped_images"]
    assert "000002.png" in skipped and "image id 2" in skipped
    _, meta, _ = ds[0]
    assert "skipped_images" not in meta
    for name in ("000001.png", "000003.png", "000004.png", "000005.png"):
        (img_dir / name).unlink()
    with pytest.raises(ValueError, match="5 images in a row cannot be read from index 0"):
        ds[0]
    assert torch.is_tensor(image)
