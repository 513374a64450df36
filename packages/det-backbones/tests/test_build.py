import subprocess
import sys

import pytest
import torch

from det_backbones import BACKBONES, VGG16SSD, ResNet, build_backbone

EXPECTED = {
    "r18": (18, "pytorch", 1, [64, 128, 256, 512]),
    "r34": (34, "pytorch", 1, [64, 128, 256, 512]),
    "r50": (50, "pytorch", 1, [256, 512, 1024, 2048]),
    "r101": (101, "pytorch", 1, [256, 512, 1024, 2048]),
    "r152": (152, "pytorch", 1, [256, 512, 1024, 2048]),
    "r50-caffe": (50, "caffe", 1, [256, 512, 1024, 2048]),
    "r101-caffe": (101, "caffe", 1, [256, 512, 1024, 2048]),
    "x101-32x4d": (101, "pytorch", 32, [256, 512, 1024, 2048]),
    "x101-64x4d": (101, "pytorch", 64, [256, 512, 1024, 2048]),
}
# Blocks per stage, counted from the ResNet paper's table 1.
BLOCKS = {18: 8, 34: 16, 50: 16, 101: 33, 152: 50}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_resnet_names(name):
    depth, style, groups, channels = EXPECTED[name]
    with torch.device("meta"):
        model = build_backbone(name)
    assert isinstance(model, ResNet)
    assert (model.depth, model.style, model.norm, model.frozen_stages) == (
        depth, style, "FrozenBN", 1,
    )  # fmt: skip
    assert sum(len(getattr(model, f"layer{i}")) for i in (1, 2, 3, 4)) == BLOCKS[depth]
    assert model.layer2[0].conv2.groups == groups
    assert model.out_channels == channels and model.strides == [4, 8, 16, 32]


def test_ssd_names():
    with torch.device("meta"):
        assert build_backbone("vgg16-ssd300").input_size == 300
        assert isinstance(build_backbone("vgg16-ssd512"), VGG16SSD)
    assert set(BACKBONES) == set(EXPECTED) | {"vgg16-ssd300", "vgg16-ssd512"}


def test_overrides_reach_the_constructor():
    with torch.device("meta"):
        model = build_backbone("r50-caffe", norm="GN", out_indices=(1, 2, 3), frozen_stages=-1)
    assert model.style == "caffe" and isinstance(model.bn1, torch.nn.GroupNorm)
    assert model.out_channels == [512, 1024, 2048]
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"one of r18, r34, .*vgg16-ssd512; got 'r42'"):
        build_backbone("r42")


def test_ssd_takes_only_width_and_norm_overrides():
    with pytest.raises(TypeError, match=r"vgg16-ssd300 takes only .*; got \['dcn'\]"):
        build_backbone("vgg16-ssd300", dcn="dconv")
    with pytest.raises(ValueError, match="norm must be None or 'BN', got 'GN'"):
        build_backbone("vgg16-ssd300", norm="GN")
    slim = build_backbone("vgg16-ssd300", base_channels=16, norm="BN")
    assert (slim.base_channels, slim.norm) == (16, "BN")


def test_building_and_running_does_not_import_torchvision():
    code = (
        "import sys, torch, det_backbones as b\n"
        "m = b.fuse(b.build_backbone('r18', dcn=None).eval())\n"
        "assert len(m(torch.zeros(1, 3, 32, 32))) == 4\n"
        "assert 'torchvision' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
