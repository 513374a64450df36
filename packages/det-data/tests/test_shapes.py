import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from det_data import shapes

SMALL = {"train": 24, "val": 8}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return shapes.prepare(tmp_path_factory.mktemp("a") / "shapes", splits=SMALL)


def test_generation_is_deterministic(small_root, tmp_path):
    other = shapes.prepare(tmp_path / "elsewhere", splits=SMALL)
    for split in SMALL:
        a = (small_root / "annotations" / f"instances_{split}.json").read_text()
        b = (other / "annotations" / f"instances_{split}.json").read_text()
        assert a == b
    a = (small_root / "train" / "000003.jpg").read_bytes()
    assert a == (other / "train" / "000003.jpg").read_bytes()
    # nothing but the dataset is left beside it (the temporary folder was renamed)
    assert sorted(p.name for p in other.parent.iterdir()) == ["elsewhere"]


def test_content_classes_sizes_and_masks(small_root):
    data = json.loads((small_root / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["circle", "square", "triangle"]
    assert len(data["images"]) == 24
    assert all(160 <= im["width"] <= 256 and 160 <= im["height"] <= 256 for im in data["images"])
    assert {a["category_id"] for a in data["annotations"]} == {1, 2, 3}
    kinds = {type(a["segmentation"]).__name__ for a in data["annotations"]}
    assert kinds == {"list", "dict"}  # polygons, and RLE for partly covered objects
    coco = COCO(str(small_root / "annotations" / "instances_train.json"))
    for ann in data["annotations"][:20]:
        m = coco.annToMask(ann)
        ys, xs = np.nonzero(m)
        x, y, w, h = ann["bbox"]
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
        assert m.sum() == ann["area"]


def test_dataset_loads_through_coco_dataset(small_root):
    ds = shapes.dataset("val", root=small_root)
    assert len(ds) == 8 and not ds.train and ds.classes == shapes.CLASSES
    image, meta, target = ds[0]
    assert image.shape[0] == 3 and meta["ori_shape"][:2] == tuple(image.shape[1:])
    coco = ds.coco
    anns = coco.imgToAnns[meta["image_id"]]
    expected = np.stack([coco.annToMask(a) for a in anns])
    np.testing.assert_array_equal(target["masks"].to_tensor().numpy(), expected)
    assert target["labels"].tolist() == [a["category_id"] - 1 for a in anns]


def test_prepare_reuses_and_respects_det_data_home(small_root, tmp_path, monkeypatch):
    stamp = (small_root / "annotations" / "instances_val.json").stat().st_mtime_ns
    assert shapes.prepare(small_root) == small_root
    assert (small_root / "annotations" / "instances_val.json").stat().st_mtime_ns == stamp
    monkeypatch.setenv("DET_DATA_HOME", str(tmp_path))
    assert shapes.default_root() == tmp_path / "shapes" / shapes.VERSION
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "junk").write_text("x")
    with pytest.raises(FileExistsError, match="broken exists but holds no complete"):
        shapes.prepare(tmp_path / "broken")
