"""Proposal files: the formats read, what save_proposals writes, the dataset order of lists."""

import json
import os
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from coco_fixtures import write_coco

import det_io
from det_data import CocoDataset, load_proposals, save_proposals


def _quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CocoDataset(*args, **kwargs)


@pytest.mark.parametrize("suffix", [".json", ".npz", ".pt"])
def test_save_then_load_round_trip(tmp_path, suffix):
    props = {7: torch.tensor([[1.0, 2.0, 30.0, 40.0, 0.9]]), 3: np.zeros((0, 5), np.float32)}
    path = save_proposals(tmp_path / f"sub/props{suffix}", props)
    assert path.name == f"props{suffix}" and path.is_file()
    loaded = load_proposals(path, [3, 7])
    assert set(loaded) == {3, 7}  # string keys (JSON, .npz) map back to the dataset's int ids
    np.testing.assert_allclose(loaded[7], [[1.0, 2.0, 30.0, 40.0, 0.9]], atol=1e-3)
    assert len(loaded[3]) == 0 and loaded[7].dtype == np.float32
    if suffix == ".json":
        assert json.loads(path.read_text())["7"] == [[1.0, 2.0, 30.0, 40.0, 0.9]]
    else:  # binary formats keep float32 exactly
        assert loaded[7][0, 4] == np.float32(0.9)


def test_nothing_written_is_a_pickle(tmp_path):
    props = {1: np.ones((2, 5), np.float32)}
    with np.load(save_proposals(tmp_path / "p.npz", props), allow_pickle=False) as members:
        assert members.files == ["1"]
    torch.load(save_proposals(tmp_path / "p.pt", props), weights_only=True)
    with pytest.raises(ValueError, match=r"p\.pkl: expected a \.json, \.npz, \.pt name"):
        save_proposals(tmp_path / "p.pkl", props)
    assert not (tmp_path / "p.pkl").exists()


def test_save_rejects_other_formats_and_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"\.json, \.npz, \.pt"):
        save_proposals(tmp_path / "p.txt", {})
    with pytest.raises(ValueError, match=r"image id 1 .*expected \[K, 5\]"):
        save_proposals(tmp_path / "p.json", {1: np.zeros((2, 4))})


class _RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".npy"])
def test_proposal_files_that_run_code_are_refused(tmp_path, suffix):
    # The report that opened issue 28: such a file ran its command, then failed on a shape.
    marker = tmp_path / "ran"
    payload = [np.zeros((2, 5), np.float32), _RunsShell(marker)]
    path = tmp_path / f"proposals{suffix}"
    if suffix == ".npy":
        np.save(path, np.array({1: payload}, dtype=object))  # np.save pickles objects
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(
        det_io.UnsafePickleError, match=re.escape(f"proposals file {path}: refused")
    ):
        load_proposals(path, [1, 2])
    assert not marker.exists()


def test_2019_proposal_list_loads(tmp_path):
    # The 2019 zoo's files: a list of float32 [K, 5] arrays, pickled with protocol 2.
    props = [np.arange(10, dtype=np.float32).reshape(2, 5), np.zeros((0, 5), np.float32)]
    path = tmp_path / "rpn_r50_fpn_1x_val2017.pkl"
    path.write_bytes(pickle.dumps(props, protocol=2))
    loaded = load_proposals(path, [11, 12])
    np.testing.assert_array_equal(loaded[11], props[0])
    assert loaded[12].shape == (0, 5)


def test_a_list_follows_the_annotation_files_image_order(tmp_path):
    # The 2019 zoo's .pkl files are lists in dataset order: the order of the JSON's images,
    # which need not be sorted by id.
    ann_file, img_dir = write_coco(tmp_path)
    data = json.loads(ann_file.read_text())
    data["images"] = data["images"][::-1]  # ids 5, 4, 3, 2, 1
    ann_file.write_text(json.dumps(data))
    props = [np.full((3, 5), image["id"], np.float32) for image in data["images"]]
    path = tmp_path / "props.pkl"
    path.write_bytes(pickle.dumps(props))
    ds = _quiet(ann_file, img_dir, train=False, proposals=path, max_proposals=2)
    for record in ds.records:
        assert record.extra["proposals"].shape == (2, 5)  # the first max_proposals kept
        assert (record.extra["proposals"] == record.image_id).all()


def test_unknown_suffix_and_bad_arrays_name_the_file(tmp_path):
    (tmp_path / "p.csv").write_text("")
    with pytest.raises(ValueError, match=r"p\.csv: expected one of"):
        load_proposals(tmp_path / "p.csv", [1])
    (tmp_path / "p.json").write_text(json.dumps({"1": [[1, 2, 3]]}))
    with pytest.raises(ValueError, match=r"p\.json: image id 1 has shape \(1, 3\)"):
        load_proposals(tmp_path / "p.json", [1])
    with pytest.raises(FileNotFoundError, match=r"nope\.pkl"):
        load_proposals(tmp_path / "nope.pkl", [1])
