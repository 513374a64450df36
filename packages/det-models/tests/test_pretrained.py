import pytest
import torch
from mmdet_layout import to_mmdet

from det_heads import MMDET_V06
from det_models import zoo

KEY = ("retinanet", "r50", "1x", None)


def test_load_pretrained_from_a_local_mmdet_file(tmp_path):
    torch.manual_seed(0)
    source_model = zoo.build(*KEY)
    checkpoint = {"state_dict": to_mmdet(source_model.state_dict(), KEY), "meta": {"epoch": 12}}
    checkpoint["state_dict"]["extra.unused"] = torch.zeros(1)
    path = tmp_path / "retinanet_r50_fpn_1x.pth"
    torch.save(checkpoint, path)
    torch.manual_seed(1)
    model = zoo.build(*KEY, conventions=MMDET_V06)
    assert not torch.equal(model.head.cls.weight, source_model.head.cls.weight)
    unused = zoo.load_pretrained(model, zoo.entry(*KEY), path)
    assert unused == ["extra.unused"]
    for (name, a), b in zip(
        model.state_dict().items(), source_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_load_pretrained_offline_names_the_file_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    entry = zoo.entry(*KEY)
    with torch.device("meta"):
        model = zoo.build(*KEY, conventions=MMDET_V06)
    filename = entry.url.rsplit("/", 1)[1]
    with pytest.raises(FileNotFoundError, match=filename) as info:
        zoo.load_pretrained(model, entry, download=False)
    assert str(tmp_path / "hub" / "checkpoints" / filename) in str(info.value)
    assert entry.url in str(info.value)


def test_load_pretrained_uses_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    entry = zoo.entry(*KEY)
    torch.manual_seed(0)
    source_model = zoo.build(*KEY)
    (tmp_path / "checkpoints").mkdir()
    cached = tmp_path / "checkpoints" / entry.url.rsplit("/", 1)[1]
    torch.save(to_mmdet(source_model.state_dict(), KEY), cached)
    model = zoo.build(*KEY, conventions=MMDET_V06)
    assert zoo.load_pretrained(model, entry, entry.url, download=False) == []
    torch.testing.assert_close(model.head.reg.weight, source_model.head.reg.weight)


def test_load_pretrained_errors():
    with torch.device("meta"):
        model = zoo.build("rpn", "r50-caffe", "1x", conventions=MMDET_V06)
    with pytest.raises(ValueError, match="no released checkpoint"):
        zoo.load_pretrained(model, zoo.entry("rpn", "r50-caffe", "1x"))
    with pytest.raises(FileNotFoundError, match="no checkpoint file at"):
        zoo.load_pretrained(model, zoo.entry("rpn", "r50-caffe", "1x"), "/nonexistent/x.pth")


def test_load_pretrained_refuses_a_model_built_with_other_conventions(tmp_path):
    with torch.device("meta"):
        model = zoo.build(*KEY)
    with pytest.raises(ValueError, match=r"conventions=det_heads\.MMDET_V06"):
        zoo.load_pretrained(model, zoo.entry(*KEY), tmp_path / "x.pth")
