import json
import pickle
import warnings

import numpy as np
import pytest
import torch
from coco_fixtures import write_coco
from pycocotools.coco import COCO

from det_data import CocoDataset


@pytest.fixture
def coco_files(tmp_path):
    return write_coco(tmp_path)


def _quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CocoDataset(*args, **kwargs)


def test_training_drops_empty_small_and_degenerate_images(coco_files):
    train = _quiet(*coco_files)
    assert [r.image_id for r in train.records] == [1, 2]
    evaluation = _quiet(*coco_files, train=False)
    assert len(evaluation) == 5
    assert [r.image_id for r in _quiet(*coco_files, min_size=10).records] == [1, 2, 4]


def test_label_mapping_round_trip(coco_files):
    ds = _quiet(*coco_files)
    assert ds.cat_ids == (1, 3, 7)
    assert ds.classes == ("one", "three", "seven")
    assert ds.cat_id_to_label == {1: 0, 3: 1, 7: 2}
    for cat_id in ds.cat_ids:
        assert ds.label_to_cat_id[ds.cat_id_to_label[cat_id]] == cat_id
    _, _, target = ds[0]
    assert target["labels"].tolist() == [2, 0]
    assert target["labels"].dtype == torch.int64


def test_sample_contract_boxes_and_crowd(coco_files):
    ds = _quiet(*coco_files)
    image, meta, target = ds[0]
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 255 and image.max() > 1
    assert meta == {
        "image_id": 1,
        "ori_shape": (48, 64, 3),
        "img_shape": (48, 64, 3),
        "pad_shape": (48, 64, 3),
        "scale_factor": (1.0, 1.0, 1.0, 1.0),
        "flip": False,
    }
    torch.testing.assert_close(
        target["boxes"], torch.tensor([[10.0, 5.0, 30.0, 35.0], [40.5, 10.0, 55.5, 22.5]])
    )
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[0.0, 30.0, 20.0, 48.0]]))
    assert len(target["masks"]) == 2  # the crowd object has no mask in the target


def test_degenerate_boxes_dropped_and_reported_once(coco_files):
    with pytest.warns(UserWarning, match="dropped 1 degenerate") as record:
        ds = CocoDataset(*coco_files, train=False)
    assert len(record) == 1
    assert ds.num_dropped == 1
    assert len(ds.records[4].boxes) == 0


def test_masks_equal_pycocotools_ann_to_mask(coco_files):
    ann_file, _ = coco_files
    ds = _quiet(*coco_files)
    coco = COCO(str(ann_file))
    for index, ann_ids in [(0, [10, 11]), (1, [20, 21])]:
        _, _, target = ds[index]
        expected = np.stack([coco.annToMask(coco.anns[i]) for i in ann_ids])
        got = target["masks"].to_tensor().numpy()
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert expected.sum() > 0


def test_proposals_list_and_dict(coco_files, tmp_path):
    props = [np.full((2, 5), i, dtype=np.float32) for i in range(1, 6)]
    path = tmp_path / "props.pkl"
    path.write_bytes(pickle.dumps(props))
    ds = _quiet(*coco_files, proposals=path)
    _, _, target = ds[1]
    torch.testing.assert_close(target["proposals"], torch.full((2, 5), 2.0))
    by_id = {i: np.ones((i, 4)) for i in range(1, 6)}
    np.save(tmp_path / "props.npy", np.array(by_id, dtype=object))
    ds = _quiet(*coco_files, train=False, proposals=tmp_path / "props.npy")
    assert [r.extra["proposals"].shape for r in ds.records] == [(i, 4) for i in range(1, 6)]
    del by_id[3]
    np.save(tmp_path / "props.npy", np.array(by_id, dtype=object))
    with pytest.raises(ValueError, match=r"props\.npy has no entry for image id 3"):
        _quiet(*coco_files, proposals=tmp_path / "props.npy")
    path.write_bytes(pickle.dumps(props[:3]))
    with pytest.raises(ValueError, match="holds 3 arrays but the annotation file has 5"):
        _quiet(*coco_files, proposals=path)


def test_missing_image_names_file_and_record(coco_files):
    _, img_dir = coco_files
    (img_dir / "000002.png").unlink()
    ds = _quiet(*coco_files)
    with pytest.raises(FileNotFoundError, match=r"000002\.png.*image id 2"):
        ds[1]


def test_unreadable_image_names_file(coco_files):
    _, img_dir = coco_files
    (img_dir / "000001.png").write_bytes(b"not an image at all")
    ds = _quiet(*coco_files)
    with pytest.raises(ValueError, match=r"cannot decode image file .*000001\.png.*image id 1"):
        ds[0]


def test_truncated_json_names_file(coco_files):
    ann_file, _ = coco_files
    ann_file.write_text(ann_file.read_text()[:200])
    with pytest.raises(ValueError, match=r"instances\.json is not valid JSON"):
        CocoDataset(*coco_files)


def test_unknown_category_names_annotation(coco_files):
    ann_file, _ = coco_files
    data = json.loads(ann_file.read_text())
    data["annotations"][3]["category_id"] = 99
    ann_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotation id 20 \(image id 2\) has category_id 99"):
        _quiet(*coco_files)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.json does not exist"):
        CocoDataset(tmp_path / "nope.json", tmp_path)
