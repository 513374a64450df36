"""The zoo's ImageNet initialisations: files in each real layout loaded through
`load_pretrained`, and `resolve` over $DET_WEIGHTS_DIR, torch.hub's cache and a download (a
local file:// address or a stand-in: nothing is fetched from the network)."""

import hashlib
import re
import urllib.error

import pytest
import torch
import torchvision
from backbone_inputs import assert_maps_close, image, randomize_batch_norm, torchvision_stages
from test_weights import caffe_reference, detectron_blobs, write_pkl

from det_backbones import (
    BACKBONES,
    SOURCES,
    VGG16SSD,
    ResNet,
    WeightsMismatchError,
    WeightsNotFoundError,
    load_pretrained,
    pretrained,
    resolve,
)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """An empty $DET_WEIGHTS_DIR and torch.hub cache, and no network."""
    weights_dir, torch_home = tmp_path / "weights", tmp_path / "torch"
    weights_dir.mkdir()
    monkeypatch.setenv("DET_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(pretrained, "download_url_to_file", offline)
    return weights_dir, torch_home / "hub" / "checkpoints"


def save_as(folder, uri, state):
    """Writes state under the file name of the source `uri` in folder."""
    path = folder / SOURCES[uri].file_name
    torch.save(state, path)
    return path


def test_torchvision_resnet18_file_gives_torchvision_outputs(tmp_path):
    theirs = randomize_batch_norm(torchvision.models.resnet18(weights=None), seed=3).eval()
    torch.save(theirs.state_dict(), tmp_path / "resnet18.pth")
    ours = ResNet(18).eval()
    report = load_pretrained(ours, tmp_path / "resnet18.pth")
    assert report.missing == () and report.unexpected == ()  # fc.* dropped silently
    assert report.loaded == len([k for k in ours.state_dict() if "num_batches" not in k])
    x = image(seed=1)
    with torch.no_grad():
        assert_maps_close(ours(x), torchvision_stages(theirs, x))


def test_modelzoo_resnet50_from_the_weights_dir_with_deformable_stages(folders):
    weights_dir, _ = folders
    theirs = randomize_batch_norm(torchvision.models.resnet50(weights=None), seed=4).eval()
    path = save_as(weights_dir, "modelzoo://resnet50", theirs.state_dict())
    ours = ResNet(50, dcn="dconv", stage_with_dcn=(False, True, True, True)).eval()
    report = load_pretrained(ours, "modelzoo://resnet50")
    assert report.path == path and report.source == "modelzoo://resnet50"
    # Only the offset predictors are left at their initialisation: zero, so each deformable
    # conv computes the plain conv of the ImageNet network.
    assert report.missing and all(".conv2.conv_offset." in k for k in report.missing)
    assert all(torch.count_nonzero(ours.state_dict()[k]) == 0 for k in report.missing)
    x = image(seed=2)
    with torch.no_grad():
        assert_maps_close(ours(x)[:1], torchvision_stages(theirs, x)[:1])


def test_resnext_layout_gives_torchvision_outputs(tmp_path):
    theirs = randomize_batch_norm(torchvision.models.resnext50_32x4d(weights=None), seed=5)
    torch.save({"state_dict": theirs.state_dict()}, tmp_path / "resnext50_32x4d.pth")
    ours = ResNet(50, groups=32, base_width=4).eval()
    assert load_pretrained(ours, tmp_path / "resnext50_32x4d.pth").missing == ()
    x = image(seed=3)
    with torch.no_grad():
        assert_maps_close(ours(x), torchvision_stages(theirs.eval(), x))


def test_caffe_file_with_folded_batch_norm_into_a_caffe_resnet(folders):
    """open-mmlab's resnet50_caffe: torchvision's names, Detectron's folded BN as weight and
    bias with running mean 0 and variance 1. The frozen layers compute what the 2019 code's
    frozen nn.BatchNorm2d (eps 1e-5) computed with them."""
    weights_dir, _ = folders
    donor = randomize_batch_norm(ResNet(50, style="caffe", norm="BN"), seed=6).eval()
    state = donor.state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            value.zero_()
        elif key.endswith("running_var"):
            value.fill_(1.0)
    save_as(weights_dir, "open-mmlab://resnet50_caffe", state)
    ours = ResNet(50, style="caffe").eval()
    report = load_pretrained(ours, "open-mmlab://resnet50_caffe")
    assert report.missing == () and report.unexpected == ()
    assert torch.equal(ours.layer3[5].bn2.running_var, torch.ones(256))
    x = image(seed=4)
    with torch.no_grad():
        assert_maps_close(ours(x), donor(x))


def test_group_norm_file_with_v06_names_lands_in_each_module(folders):
    """open-mmlab's GN files name the norms gn1..gn3 (stem gn1), ours bn1..bn3."""
    weights_dir, _ = folders
    donor = ResNet(50, norm="GN")
    g = torch.Generator().manual_seed(1)
    file_state = {}
    for key, value in donor.state_dict().items():
        file_key = re.sub(r"(^|\.)bn(\d)\.", r"\1gn\2.", key)
        file_state[file_key] = torch.randn(value.shape, generator=g)
    file_state["fc.weight"] = torch.zeros(1000, 2048)
    assert "gn1.weight" in file_state and "layer4.2.gn3.bias" in file_state
    assert "layer1.0.downsample.1.weight" in file_state
    save_as(weights_dir, "open-mmlab://detectron/resnet50_gn", file_state)
    ours = ResNet(50, norm="GN")
    report = load_pretrained(ours, "open-mmlab://detectron/resnet50_gn")
    assert report.missing == () and report.unexpected == ()
    modules = dict(ours.named_modules())
    for file_key, value in file_state.items():
        if file_key.startswith("fc."):
            continue
        module_name, field = file_key.rsplit(".", 1)
        module_name = re.sub(r"(^|\.)gn(\d)$", r"\1bn\2", module_name)
        assert torch.equal(getattr(modules[module_name], field), value), file_key
    assert isinstance(modules["layer2.0.bn3"], torch.nn.GroupNorm)


def test_vgg16_caffe_file_into_ssd300(folders):
    weights_dir, _ = folders
    donor = VGG16SSD(300)
    g = torch.Generator().manual_seed(2)
    state = {
        k: torch.randn(v.shape, generator=g)
        for k, v in donor.state_dict().items()
        if k.startswith("features.")
    }
    assert {"features.28.weight", "features.31.weight", "features.33.bias"} <= set(state)
    save_as(weights_dir, "open-mmlab://vgg16_caffe", state)
    ours = VGG16SSD(300)
    extra_before = ours.extra[0].weight.clone()
    report = load_pretrained(ours, "open-mmlab://vgg16_caffe")
    assert report.unexpected == ()
    assert {k.split(".")[0] for k in report.missing} == {"extra", "l2_norm"}
    for key, value in state.items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert torch.equal(ours.extra[0].weight, extra_before)


def test_torchvision_vgg16_layout_leaves_fc6_fc7_initialised(tmp_path):
    donor = VGG16SSD(300)
    state = {
        k: v
        for k, v in donor.state_dict().items()
        if re.match(r"features\.\d\.|features\.[12]\d\.", k)
    }
    state["classifier.0.weight"] = torch.zeros(4, 3)
    torch.save(state, tmp_path / "vgg16.pth")
    report = load_pretrained(VGG16SSD(300), tmp_path / "vgg16.pth")
    assert {"features.31.weight", "features.33.bias"} <= set(report.missing)
    assert report.unexpected == ()


def test_detectron_pkl_is_read_by_load_detectron(tmp_path):
    blobs = detectron_blobs(seed=3)
    path = write_pkl(tmp_path / "R-50.pkl", blobs)
    model = ResNet(50, style="caffe").eval()
    report = load_pretrained(model, path)
    assert report.missing == () and report.path == path
    x = image(seed=5)
    with torch.no_grad():
        assert_maps_close(model(x), caffe_reference(blobs, x))


def test_detector_checkpoint_gives_its_backbone(tmp_path):
    theirs = torchvision.models.resnet18(weights=None)
    state = {f"backbone.{k}": v for k, v in theirs.state_dict().items()}
    state["neck.lateral.0.weight"] = torch.zeros(1)
    torch.save({"model": state, "run": {}}, tmp_path / "iter_00000010.pth")
    ours = ResNet(18)
    assert load_pretrained(ours, tmp_path / "iter_00000010.pth").unexpected == ()
    assert torch.equal(ours.layer4[1].conv2.weight, theirs.layer4[1].conv2.weight)


def test_files_that_do_not_fit_are_refused_by_name(tmp_path, folders):
    torch.save({"head.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsMismatchError, match=r"other\.pth fits none of the ResNet"):
        load_pretrained(ResNet(18), tmp_path / "other.pth")
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer3.1.bn2.running_var"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(
        WeightsMismatchError,
        match=r"partial\.pth leaves 1 keys missing.*"
        r"layer3\.1\.bn2\.running_var",
    ):
        load_pretrained(ResNet(18), tmp_path / "partial.pth")
    model = ResNet(50)
    before = model.conv1.weight.clone()
    with pytest.raises(WeightsMismatchError, match=r"partial\.pth leaves \d+ keys missing"):
        load_pretrained(model, tmp_path / "partial.pth")
    assert torch.equal(model.conv1.weight, before)  # refused before anything was copied
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsMismatchError, match=r"r18\.pth: checkpoint key conv1\.weight"):
        load_pretrained(ResNet(18, base_channels=32), tmp_path / "r18.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(WeightsMismatchError, match="cannot be read"):
        load_pretrained(ResNet(18), tmp_path / "text.pth")


def test_known_sources_refuse_the_wrong_kind_of_backbone(folders):
    """Checked before any file is looked for."""
    with pytest.raises(WeightsMismatchError, match=r"resnet50_gn-9186a21c\.pth.*not a ResNet"):
        load_pretrained(ResNet(50), "open-mmlab://detectron/resnet50_gn")
    with pytest.raises(WeightsMismatchError, match=r"layout 'resnet'.*norm 'GN'"):
        load_pretrained(ResNet(50, norm="GN"), "modelzoo://resnet50")
    with pytest.raises(WeightsMismatchError, match="ssd300 or vgg16-ssd512, not a ResNet"):
        load_pretrained(ResNet(50), "open-mmlab://vgg16_caffe")
    with pytest.raises(WeightsMismatchError, match="not a VGG16SSD"):
        load_pretrained(VGG16SSD(300), "modelzoo://resnet50")


def test_every_source_names_a_checked_file():
    for uri, source in SOURCES.items():
        assert source.uri == uri and source.url.endswith("/" + source.file_name)
        assert re.fullmatch(r"[0-9a-f]{8}", source.sha256_prefix), uri
        assert source.layout in ("resnet", "resnet-gn", "vgg16")
        assert set(source.archs) <= set(BACKBONES), uri


def test_resolve_order_weights_dir_then_hub_cache(folders):
    weights_dir, cache = folders
    cache.mkdir(parents=True)
    uri = "open-mmlab://resnet101_caffe"
    (cache / SOURCES[uri].file_name).write_bytes(b"cached")
    assert resolve(uri) == cache / "resnet101_caffe-3ad79236.pth"
    (weights_dir / SOURCES[uri].file_name).write_bytes(b"mine")
    assert resolve(uri) == weights_dir / "resnet101_caffe-3ad79236.pth"
    # torchvision's 2019 file of the same ImageNet weights is accepted too.
    (cache / "resnet50-19c8e357.pth").write_bytes(b"2019")
    assert resolve("modelzoo://resnet50") == cache / "resnet50-19c8e357.pth"
    assert resolve(cache / "resnet50-19c8e357.pth") == cache / "resnet50-19c8e357.pth"


def test_offline_and_not_found_says_what_to_do(folders, monkeypatch):
    weights_dir, cache = folders
    uri = "open-mmlab://resnext101_64x4d"
    url = "https://s3.ap-northeast-2.amazonaws.com/open-mmlab/pretrain/third_party/"
    for kwargs, why in (({}, "download failed"), ({"download": False}, "downloading is off")):
        with pytest.raises(WeightsNotFoundError) as e:
            resolve(uri, **kwargs)
        message = str(e.value)
        assert f"download {url}resnext101_64x4d-ee2c6f71.pth" in message
        assert str(weights_dir / "resnext101_64x4d-ee2c6f71.pth") in message
        assert str(cache / "resnext101_64x4d-ee2c6f71.pth") in message
        assert why in message
    monkeypatch.delenv("DET_WEIGHTS_DIR")
    with pytest.raises(WeightsNotFoundError, match=r"torch.hub's cache\) or into a folder named"):
        resolve(uri, download=False)
    with pytest.raises(WeightsNotFoundError, match="unknown URI 'open-mmlab://resnet18'"):
        resolve("open-mmlab://resnet18")
    with pytest.raises(WeightsNotFoundError, match="no file at"):
        resolve(weights_dir / "nowhere.pth")
    assert isinstance(WeightsNotFoundError("x"), FileNotFoundError)


def test_download_checks_the_sha256_prefix(folders, monkeypatch, tmp_path):
    """The real downloader on file:// addresses: the file lands in the hub cache only when
    its SHA-256 starts with the prefix in its name."""
    _, cache = folders
    monkeypatch.setattr(pretrained, "download_url_to_file", torch.hub.download_url_to_file)
    served = tmp_path / "served"
    served.mkdir()
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, served / "weights.pth")
    digest = hashlib.sha256((served / "weights.pth").read_bytes()).hexdigest()
    good = served / f"resnet18-{digest[:8]}.pth"
    (served / "weights.pth").rename(good)
    bad = served / f"resnet18-{'0' if digest[0] != '0' else '1'}{digest[1:8]}.pth"
    bad.write_bytes(good.read_bytes())
    source = SOURCES["modelzoo://resnet50"]
    for path in (good, bad):
        fake = pretrained.WeightSource(
            "modelzoo://resnet18", path.as_uri(), ("r18",), "resnet", source.input
        )
        monkeypatch.setitem(SOURCES, "modelzoo://resnet18", fake)
        if path is bad:
            with pytest.raises(WeightsNotFoundError, match=r"download failed.*hash"):
                resolve("modelzoo://resnet18")
            assert not (cache / bad.name).exists()
        else:
            assert resolve("modelzoo://resnet18") == cache / good.name
            report = load_pretrained(ResNet(18), "modelzoo://resnet18")
            assert report.path == cache / good.name and report.missing == ()
