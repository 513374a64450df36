import io
import os
import pickle
import re
import struct
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from backbone_inputs import assert_maps_close, image, randomize_batch_norm

import det_io
from det_backbones import VGG16SSD, ResNet, load_detectron, load_torchvision

R50_BLOCKS = (3, 4, 6, 3)


def detectron_blobs(norm="bn", seed=0):
    """A Detectron-format R-50 ImageNet checkpoint with random values and the real blob names
    (MSRA R-50.pkl; R-50-GN.pkl for norm="gn"), plus the blobs a loader must skip."""
    rng = np.random.default_rng(seed)
    blobs = {}

    def conv(name, out_channels, in_channels, k):
        std = np.sqrt(2.0 / (in_channels * k * k))
        shape = (out_channels, in_channels, k, k)
        blobs[f"{name}_w"] = (rng.standard_normal(shape) * std).astype(np.float32)

    def affine(name, channels):
        blobs[f"{name}_s"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        blobs[f"{name}_b"] = rng.normal(0.0, 0.1, channels).astype(np.float32)

    conv("conv1", 64, 3, 7)
    affine("res_conv1_bn" if norm == "bn" else "conv1_gn", 64)
    in_channels = 64
    for stage, blocks in enumerate(R50_BLOCKS):
        planes = 64 * 2**stage
        for i in range(blocks):
            prefix = f"res{stage + 2}_{i}"
            if i == 0:
                conv(f"{prefix}_branch1", planes * 4, in_channels, 1)
                affine(f"{prefix}_branch1_{norm}", planes * 4)
            shapes = [(planes, in_channels, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            for branch, (out_channels, cin, k) in zip("abc", shapes, strict=True):
                conv(f"{prefix}_branch2{branch}", out_channels, cin, k)
                affine(f"{prefix}_branch2{branch}_{norm}", out_channels)
            in_channels = planes * 4
    blobs["fc1000_w"] = rng.standard_normal((1000, 2048)).astype(np.float32)
    blobs["fc1000_b"] = np.zeros(1000, np.float32)
    blobs["conv1_b"] = np.zeros(64, np.float32)
    blobs["res2_0_branch2a_w_momentum"] = np.zeros_like(blobs["res2_0_branch2a_w"])
    return blobs


def caffe_reference(blobs, x, norm="bn"):
    """C2-C5 of a caffe-style ResNet-50 computed directly from Detectron blobs: stride on
    branch2a, each norm an affine map x * s + b (or GroupNorm with 32 groups)."""
    t = {k: torch.from_numpy(v) for k, v in blobs.items()}

    def normed(x, name):
        s, b = t[f"{name}_s"], t[f"{name}_b"]
        if norm == "gn":
            return F.group_norm(x, 32, s, b, eps=1e-5)
        return x * s.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)

    x = F.conv2d(x, t["conv1_w"], stride=2, padding=3)
    x = F.relu(normed(x, "res_conv1_bn" if norm == "bn" else "conv1_gn"))
    x = F.max_pool2d(x, 3, 2, 1)
    outs = []
    for stage, blocks in enumerate(R50_BLOCKS):
        for i in range(blocks):
            p = f"res{stage + 2}_{i}"
            stride = 2 if stage > 0 and i == 0 else 1
            y = F.relu(
                normed(F.conv2d(x, t[f"{p}_branch2a_w"], stride=stride), f"{p}_branch2a_{norm}")
            )
            y = F.relu(normed(F.conv2d(y, t[f"{p}_branch2b_w"], padding=1), f"{p}_branch2b_{norm}"))
            y = normed(F.conv2d(y, t[f"{p}_branch2c_w"]), f"{p}_branch2c_{norm}")
            if i == 0:
                x = normed(F.conv2d(x, t[f"{p}_branch1_w"], stride=stride), f"{p}_branch1_{norm}")
            x = F.relu(x + y)
        outs.append(x)
    return outs


class _Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote Detectron's files: str and bytes as byte strings
    (BINSTRING), so arrays carry their data as latin1 text to a Python 3 reader."""

    def save_binstring(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch: ClassVar[dict] = {
        **pickle._Pickler.dispatch,
        str: save_binstring,
        bytes: save_binstring,
    }


def write_pkl(path, blobs, wrap=True, python2=False):
    obj = {"blobs": blobs} if wrap else blobs
    if python2:
        buffer = io.BytesIO()
        _Python2Pickler(buffer, protocol=2).dump(obj)
        data = buffer.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")
        assert b"_codecs" not in data  # no Python 3 bytes encoding: a Python 2 stream
        path.write_bytes(data)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    return path


class _RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("model_norm", ["FrozenBN", "BN"])
def test_detectron_caffe_resnet50_matches_the_blobs(tmp_path, model_norm):
    blobs = detectron_blobs()
    path = write_pkl(tmp_path / "R-50.pkl", blobs)
    model = ResNet(50, style="caffe", norm=model_norm).eval()
    assert load_detectron(model, path) == ([], [])
    assert torch.equal(model.layer3[2].conv2.weight, torch.from_numpy(blobs["res4_2_branch2b_w"]))
    x = image(seed=7)
    with torch.no_grad():
        assert_maps_close(model(x), caffe_reference(blobs, x))


def test_detectron_python2_weights_load(tmp_path):
    # R-50.pkl as Detectron published it: a Python 2, protocol 2 pickle of float32 arrays.
    blobs = detectron_blobs(seed=3)
    path = write_pkl(tmp_path / "R-50.pkl", blobs, python2=True)
    model = ResNet(50, style="caffe").eval()
    assert load_detectron(model, path) == ([], [])
    assert torch.equal(model.layer1[0].conv1.weight, torch.from_numpy(blobs["res2_0_branch2a_w"]))
    assert torch.equal(model.bn1.weight, torch.from_numpy(blobs["res_conv1_bn_s"]))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_detectron_pickle_that_runs_code_is_refused(tmp_path, protocol):
    marker = tmp_path / "ran"
    blobs = {**detectron_blobs(), "res5_2_branch2c_w_meta": {"hook": [_RunsShell(marker)]}}
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs}, protocol=protocol))
    model = ResNet(50, style="caffe")
    before = model.conv1.weight.clone()
    with pytest.raises(det_io.UnsafePickleError, match=r"Detectron weights .*R-50\.pkl.*system"):
        load_detectron(model, path)
    assert not marker.exists()
    assert torch.equal(model.conv1.weight, before)


def test_detectron_group_norm_blobs(tmp_path):
    blobs = detectron_blobs(norm="gn", seed=1)
    path = write_pkl(tmp_path / "R-50-GN.pkl", blobs, wrap=False)
    model = ResNet(50, style="caffe", norm="GN").eval()
    assert load_detectron(model, path) == ([], [])
    x = image(seed=8)
    with torch.no_grad():
        assert_maps_close(model(x), caffe_reference(blobs, x, norm="gn"))


def test_detectron_reports_missing_and_unexpected(tmp_path):
    blobs = detectron_blobs()
    del blobs["res5_2_branch2c_bn_b"]
    blobs["res6_0_branch2a_w"] = np.zeros((1, 1, 1, 1), np.float32)
    blobs["fpn_inner_res5_2_sum_w"] = np.zeros((1, 1, 1, 1), np.float32)
    model = ResNet(50, style="caffe", dcn="dconv", stage_with_dcn=(False, False, False, True))
    missing, unexpected = load_detectron(model, write_pkl(tmp_path / "R-50.pkl", blobs))
    offsets = {f"layer4.{i}.conv2.conv_offset.{p}" for i in range(3) for p in ("weight", "bias")}
    assert set(missing) == offsets | {"layer4.2.bn3.bias"}
    assert unexpected == ["fpn_inner_res5_2_sum_w", "res6_0_branch2a_w"]


def test_detectron_shape_mismatch_names_the_blob_and_changes_nothing(tmp_path):
    blobs = detectron_blobs()
    blobs["res3_1_branch2b_w"] = np.zeros((128, 128, 1, 1), np.float32)
    model = ResNet(50, style="caffe")
    before = model.conv1.weight.clone()
    with pytest.raises(ValueError, match=r"res3_1_branch2b_w \(for layer2\.1\.conv2\.weight\)"):
        load_detectron(model, write_pkl(tmp_path / "R-50.pkl", blobs))
    assert torch.equal(model.conv1.weight, before)


def test_missing_files_name_the_path(tmp_path):
    path = tmp_path / "nowhere" / "R-50.pkl"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_detectron(ResNet(18), path)
    with pytest.raises(FileNotFoundError, match=r"resnet18\.pth"):
        load_torchvision(ResNet(18), tmp_path / "resnet18.pth")


def test_torchvision_checkpoint_file_with_wrapper_and_prefix(tmp_path):
    theirs = randomize_batch_norm(torchvision.models.resnet18(weights=None))
    state = {f"module.{k}": v for k, v in theirs.state_dict().items()}
    state["module.extra_head.weight"] = torch.zeros(3)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "resnet18.pth")
    model = ResNet(18)
    missing, unexpected = load_torchvision(model, tmp_path / "resnet18.pth")
    assert missing == [] and unexpected == ["extra_head.weight"]
    assert torch.equal(model.layer4[1].bn2.running_var, theirs.layer4[1].bn2.running_var)
    assert torch.equal(model.layer2[0].downsample[0].weight, theirs.layer2[0].downsample[0].weight)


def test_torchvision_shape_mismatch_names_the_key_and_changes_nothing():
    state = torchvision.models.resnet18(weights=None).state_dict()
    model = ResNet(50)
    before = model.conv1.weight.clone()
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight has shape \(64, 64, 3, 3\)"):
        load_torchvision(model, state)
    assert torch.equal(model.conv1.weight, before)


def test_loaders_refuse_other_models(tmp_path):
    with pytest.raises(TypeError, match="must be a ResNet"):
        load_detectron(VGG16SSD(300), tmp_path / "R-50.pkl")
    with pytest.raises(TypeError, match="must be a ResNet or VGG16SSD"):
        load_torchvision(torch.nn.Linear(2, 2), {})
