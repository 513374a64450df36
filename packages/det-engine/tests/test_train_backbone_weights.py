"""The train command's backbone initialisation: the row's 2019 ImageNet weights by default
(offline and missing: exit 2 naming the file, its URL and where to put it, before the data is
read), ``--backbone-weights FILE`` and ``none``, and the file fetched once per machine under
torchrun. Nothing is downloaded (conftest)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import urllib.error
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dist_env import free_port, set_torchrun_env

from det_backbones import ResNet
from det_engine import backbone_init
from det_engine import checkpoint as ckpt
from det_engine.apps import train as train_cli
from det_engine.distributed import init_from_env
from det_models import from_plain

TINY_RPN = [
    "rpn", "r50", "1x", "--device", "cpu", "--workers", "0", "--img-scale", "96", "64",
    "--batch-size", "1", "--max-iters", "1", "--no-eval",
    "--set", "model.backbone.base_channels=16", "--set", "model.neck.out_channels=32",
    "--set", "model.rpn.feat_channels=32",
]  # fmt: skip


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Empty $DET_WEIGHTS_DIR and torch.hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DET_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from det_data import shapes

    return shapes.prepare(tmp_path_factory.mktemp("data") / "shapes", {"train": 2, "val": 1})


@pytest.mark.parametrize(
    ("row", "file_name", "url"),
    [
        (
            ["faster_rcnn", "r50", "1x"],
            "resnet50-0676ba61.pth",
            "https://download.pytorch.org/models",
        ),
        (["retinanet", "r101-caffe", "1x"], "resnet101_caffe-3ad79236.pth", "open-mmlab/pretrain"),
        (["mask_rcnn", "r50", "2x", "--variant", "gn"], "resnet50_gn-9186a21c.pth", "open-mmlab"),
        (["ssd300", "vgg16", "120e"], "vgg16_caffe-292e1171.pth", "open-mmlab/pretrain"),
    ],
)
def test_default_weights_offline_stop_before_the_data(empty_caches, capsys, row, file_name, url):
    work = empty_caches / "work"
    # The data root does not exist either: the weights are looked for first.
    argv = [*row, "--data-root", str(empty_caches / "nowhere"), "--work-dir", str(work)]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: backbone weights ") and err.count("\n") == 1
    assert f"{file_name} was not found; download https://" in err and url in err
    assert str(empty_caches / "weights" / file_name) in err
    assert str(empty_caches / "torch" / "hub" / "checkpoints" / file_name) in err
    assert "download failed" in err and "nowhere" not in err
    assert not work.exists()


def test_a_weights_file_is_loaded_and_named_and_none_warns(
    empty_caches, shapes_root, capsys, tmp_path
):
    data = ["--data", "shapes", "--data-root", str(shapes_root)]
    torch.manual_seed(1)
    state = ResNet(50, base_channels=16).state_dict()
    for key, value in state.items():  # not what the model starts with before loading
        if key.endswith("running_var"):
            value.uniform_(0.8, 1.2)
        elif key.endswith(".weight") and value.dim() == 4:
            value.mul_(0.9)
    weights = tmp_path / "r50_slim.pth"
    torch.save({"state_dict": state}, weights)
    work = tmp_path / "file"
    argv = [*TINY_RPN, *data, "--work-dir", str(work), "--backbone-weights", str(weights)]
    assert train_cli.main(argv) == 0
    out = capsys.readouterr().out
    loaded = sum(1 for k in state if not k.endswith("num_batches_tracked"))
    assert f"backbone weights: {weights} ({loaded} tensors loaded, 0 left at their " in out
    saved = ckpt.load(work / "iter_00000001.pth")
    assert from_plain(saved["run"]).model.backbone.pretrained == str(weights)
    # The stem and stage 1 are frozen: still the file's after a step.
    for key in ("conv1.weight", "bn1.running_var", "layer1.2.conv3.weight"):
        assert torch.equal(saved["model"][f"backbone.{key}"], state[key]), key

    work = tmp_path / "none"
    argv = [*TINY_RPN, *data, "--work-dir", str(work), "--backbone-weights", "none"]
    assert train_cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "warning: the backbone starts from random weights (--backbone-weights none)" in (
        captured.err
    )
    assert "norm FrozenBN with norm_eval, frozen_stages 1, lr 0.02 per 16 images" in captured.err
    assert "expects ImageNet weights (modelzoo://resnet50)" in captured.err
    assert "backbone weights:" not in captured.out
    saved = ckpt.load(work / "iter_00000001.pth")
    assert from_plain(saved["run"]).model.backbone.pretrained is None


def test_whole_model_weights_skip_the_backbone_weights(empty_caches, shapes_root, capsys):
    missing = empty_caches / "missing.pth"
    argv = [*TINY_RPN, "--data", "shapes", "--data-root", str(shapes_root)]
    assert train_cli.main([*argv, "--load-from", str(missing)]) == 2
    err = capsys.readouterr().err
    # (the data check's progress goes to stderr first)
    last = err.strip().splitlines()[-1].split("\r")[-1]
    assert last.startswith("error: --load-from") and "backbone weights" not in err


def test_a_file_that_does_not_fit_is_an_error(empty_caches, shapes_root, capsys, tmp_path):
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    argv = [*TINY_RPN, "--data", "shapes", "--data-root", str(shapes_root)]
    argv += ["--work-dir", str(tmp_path / "w"), "--backbone-weights", str(tmp_path / "other.pth")]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1].split("\r")[-1]
    assert err.startswith(f"error: backbone weights {tmp_path / 'other.pth'} fits none of")


def _resolve_worker(rank, world_size, port, torch_home, fail):
    set_torchrun_env(rank, world_size, port)
    os.environ["TORCH_HOME"] = torch_home
    os.environ.pop("DET_WEIGHTS_DIR", None)
    init_from_env(backend="gloo", timeout=timedelta(seconds=60))
    from det_backbones import pretrained

    calls = []

    def download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        if fail:
            raise urllib.error.URLError("offline")
        Path(dst).write_bytes(b"weights")

    pretrained.download_url_to_file = download
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        stop = backbone_init.find_weights_on_every_rank(
            "open-mmlab://resnet50_caffe", local_rank=rank
        )
    record = {"stop": stop, "printed": printed.getvalue(), "calls": calls}
    Path(torch_home, f"rank{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


@pytest.mark.parametrize("fail", [False, True], ids=["online", "offline"])
def test_under_torchrun_the_first_process_fetches_and_all_agree(tmp_path, fail):
    mp.spawn(_resolve_worker, args=(2, free_port(), str(tmp_path), fail), nprocs=2, join=True)
    first, second = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(first["calls"]) == 1 and second["calls"] == []
    assert first["stop"] is fail and second["stop"] is fail  # both stop, or neither
    assert second["printed"] == ""  # rank 0 speaks for all
    if fail:
        assert first["printed"].startswith("error: ")
        assert "resnet50_caffe-788b5fa3.pth was not found" in first["printed"]
    else:
        assert first["printed"] == ""
        assert (tmp_path / "hub" / "checkpoints" / "resnet50_caffe-788b5fa3.pth").is_file()
