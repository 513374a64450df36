"""Every zoo row names its 2019 ImageNet initialisation, which fits its backbone and its input
normalisation; `init_backbone` loads it into a built detector (files written here, nothing
downloaded)."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from det_backbones import SOURCES, pretrained
from det_models import init_backbone, zoo
from det_models.builder import build_model
from det_models.config import (
    CAFFE_NORMALIZE,
    PYTORCH_NORMALIZE,
    SSD_NORMALIZE,
    BackboneConfig,
    ModelConfig,
    NeckConfig,
    RPNConfig,
    from_plain,
    to_plain,
)


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty $DET_WEIGHTS_DIR and torch.hub cache, and no network."""
    monkeypatch.setenv("DET_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(pretrained, "download_url_to_file", offline)
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


@pytest.mark.parametrize("key", zoo.names(), ids=lambda key: "_".join(p for p in key if p))
def test_every_row_names_a_known_source_that_fits_it(key):
    row = zoo.entry(*key)
    config = zoo.get(*key)
    uri = config.model.backbone.pretrained
    assert uri in SOURCES, (key, uri)
    source = SOURCES[uri]
    assert row.backbone_arch in source.archs
    assert (source.layout == "resnet-gn") == (config.model.backbone.norm == "GN")
    mean, std, to_rgb = source.input
    normalize = config.data.normalize
    assert (normalize.mean, normalize.std, normalize.to_rgb) == (mean, std, to_rgb), key


def test_sources_by_table():
    def uri(*key):
        return zoo.get(*key).model.backbone.pretrained

    assert uri("faster_rcnn", "r50", "1x") == "modelzoo://resnet50"
    assert uri("cascade_rcnn", "r101", "1x", "dconv-c3-c5") == "modelzoo://resnet101"
    assert uri("faster_rcnn", "r50", "1x", "mdpool") == "modelzoo://resnet50"
    assert uri("retinanet", "r50-caffe", "1x") == "open-mmlab://resnet50_caffe"
    assert uri("mask_rcnn", "r101-caffe", "1x") == "open-mmlab://resnet101_caffe"
    assert uri("faster_rcnn", "x101-32x4d", "1x", "dconv-c3-c5") == (
        "open-mmlab://resnext101_32x4d"
    )
    assert uri("cascade_mask_rcnn", "x101-64x4d", "20e") == "open-mmlab://resnext101_64x4d"
    assert uri("ssd512", "vgg16", "240e", "voc") == "open-mmlab://vgg16_caffe"
    assert uri("mask_rcnn", "r101", "3x", "gn") == "open-mmlab://detectron/resnet101_gn"
    assert uri("mask_rcnn", "r50", "2x", "gn-contrib") == "open-mmlab://contrib/resnet50_gn"
    # The normalisations are the rows' own (caffe rows BGR mean-only, SSD RGB mean-only).
    assert zoo.get("rpn", "r50-caffe", "1x").data.normalize == CAFFE_NORMALIZE
    assert zoo.get("mask_rcnn", "r50", "2x", "gn").data.normalize == CAFFE_NORMALIZE
    assert zoo.get("mask_rcnn", "r50", "2x", "gn-contrib").data.normalize == PYTORCH_NORMALIZE
    assert zoo.get("ssd300", "vgg16", "120e").data.normalize == SSD_NORMALIZE


def test_older_run_records_without_the_field_read_back():
    stored = to_plain(zoo.get("faster_rcnn", "r50", "1x"))
    del stored["fields"]["model"]["fields"]["backbone"]["fields"]["pretrained"]
    assert from_plain(stored).model.backbone.pretrained is None


def _rpn_r18(pretrained):
    return build_model(
        ModelConfig(
            family="rpn",
            num_classes=1,
            backbone=BackboneConfig(arch="r18", pretrained=pretrained),
            neck=NeckConfig(out_channels=32),
            rpn=RPNConfig(feat_channels=32),
        )
    )


def test_init_backbone_loads_the_configured_file_and_only_the_backbone(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    theirs = torchvision.models.resnet18(weights=None)
    torch.save(theirs.state_dict(), tmp_path / "resnet18.pth")
    model = _rpn_r18(str(tmp_path / "resnet18.pth"))
    neck_before = {k: v.clone() for k, v in model.neck.state_dict().items()}
    report = init_backbone(model)
    assert report.path == tmp_path / "resnet18.pth" and report.missing == ()
    assert torch.equal(
        model.backbone.layer3[0].downsample[0].weight, theirs.layer3[0].downsample[0].weight
    )
    for key, value in model.neck.state_dict().items():
        assert torch.equal(value, neck_before[key])
    # A source given overrides the config's; none at all is refused.
    with pytest.raises(ValueError, match="names no pretrained weights"):
        init_backbone(_rpn_r18(None))
    assert init_backbone(_rpn_r18(None), tmp_path / "resnet18.pth").loaded == report.loaded


def test_zoo_row_loads_its_initialisation_from_the_weights_dir(weights_dir):
    model = zoo.build("faster_rcnn", "r50-caffe", "1x")
    g = torch.Generator().manual_seed(0)
    file_state = {
        k: torch.randn(v.shape, generator=g) for k, v in model.backbone.state_dict().items()
    }
    torch.save(file_state, weights_dir / "resnet50_caffe-788b5fa3.pth")
    report = init_backbone(model)
    assert report.source == "open-mmlab://resnet50_caffe"
    assert report.path == weights_dir / "resnet50_caffe-788b5fa3.pth"
    assert report.missing == () and report.unexpected == ()
    assert torch.equal(
        model.backbone.layer4[2].bn3.running_var, file_state["layer4.2.bn3.running_var"]
    )


def test_zoo_row_offline_names_the_file_and_its_url(weights_dir):
    model = zoo.build("ssd300", "vgg16", "120e")
    with pytest.raises(FileNotFoundError) as error:
        init_backbone(model)
    message = str(error.value)
    assert "vgg16_caffe-292e1171.pth" in message
    assert "https://s3.ap-northeast-2.amazonaws.com/open-mmlab/pretrain/third_party/" in message
    assert str(weights_dir / "vgg16_caffe-292e1171.pth") in message
