import errno
import os
import random
import re

import numpy as np
import pytest
import torch
from torch import nn

from det_engine import checkpoint
from det_engine.atomic_write import WriteError
from det_engine.checkpoint import CheckpointError, checkpoint_path, latest, load, restore, save
from det_engine.schedule import WarmupStepSchedule, build_sgd


def _trained_model():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = build_sgd(model, 0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()  # momentum buffers exist now
    return model, opt


def test_round_trip_restores_everything(tmp_path):
    model, opt = _trained_model()
    sched = WarmupStepSchedule(0.02, (8, 11), 100)
    from det_models import RunConfig, from_plain, zoo

    row = zoo.get("faster_rcnn", "r50", "1x")
    run = RunConfig(
        name="faster_rcnn_r50_1x", model=row.model, data=row.data, schedule=row.schedule,
        key=row.key, class_names=("a", "b"), overrides=("schedule.lr=0.01",),
    )  # fmt: skip
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = save(
        checkpoint_path(tmp_path, 300),
        model=model,
        optimizer=opt,
        scheduler=sched,
        epoch=3,
        iteration=300,
        run=run,
    )
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())

    random.seed(99), np.random.seed(99), torch.manual_seed(99)  # disturb every generator
    model2 = nn.Linear(3, 2)
    opt2 = build_sgd(model2, 0.5)
    sched2 = WarmupStepSchedule(1.0, (1,), 1)
    ckpt = load(path)
    assert restore(ckpt, model=model2, optimizer=opt2, scheduler=sched2) == (3, 300)
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    buf = opt.state[opt.param_groups[0]["params"][0]]["momentum_buffer"]
    buf2 = opt2.state[opt2.param_groups[0]["params"][0]]["momentum_buffer"]
    assert torch.equal(buf, buf2)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1)
    assert sched2.lr_at(900) == pytest.approx(0.002)
    assert from_plain(ckpt["run"]) == run  # stored as plain data, read back whole


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    model, _ = _trained_model()
    path = save(tmp_path / "iter_00000001.pth", model=model, epoch=0, iteration=1)
    before = path.read_bytes()

    def crashing_save(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of writing

    monkeypatch.setattr(checkpoint.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        save(path, model=nn.Linear(3, 2), epoch=1, iteration=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp debris
    assert load(path)["iteration"] == 1


@pytest.mark.parametrize("where", ["torch.save", "fsync"])
def test_full_disk_mid_write_keeps_old_file_and_says_what_failed(tmp_path, monkeypatch, where):
    model, _ = _trained_model()
    path = save(tmp_path / "iter_00000001.pth", model=model, epoch=0, iteration=1)
    before = path.read_bytes()
    if where == "torch.save":

        def full_disk(obj, f):
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    else:

        def failing_fsync(fd):
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(os, "fsync", failing_fsync)
    code = errno.ENOSPC if where == "torch.save" else errno.EIO
    with pytest.raises(WriteError) as info:
        save(path, model=nn.Linear(3, 2), epoch=1, iteration=2)
    assert info.value.errno == code
    message = str(info.value)
    assert f"writing the checkpoint {path} failed (OSError: {os.strerror(code)})" in message
    assert "its previous content is kept" in message
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp debris
    assert load(path)["iteration"] == 1
    # a new file that cannot be written is not left half-written either
    monkeypatch.setattr(checkpoint.torch, "save", lambda obj, f: f.write(b"PK") and 1 / 0)
    with pytest.raises(ZeroDivisionError):
        save(tmp_path / "iter_00000002.pth", model=model, epoch=1, iteration=2)
    assert latest(tmp_path) == path


def test_torch_write_failure_inside_torch_save_is_a_write_error(tmp_path, monkeypatch):
    # torch.save turns a failed file write into RuntimeError; it is reported the same way.
    model, _ = _trained_model()
    path = save(tmp_path / "iter_00000001.pth", model=model, epoch=0, iteration=1)
    real_save = torch.save

    def save_to_a_full_disk(obj, f):
        class Full:
            written = 0

            def write(self, data):
                Full.written += len(data)
                if Full.written > 100:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return f.write(data)

            def flush(self):
                f.flush()

        real_save(obj, Full())

    monkeypatch.setattr(checkpoint.torch, "save", save_to_a_full_disk)
    with pytest.raises(WriteError, match=rf"writing the checkpoint {re.escape(str(path))} failed"):
        save(path, model=nn.Linear(3, 2), epoch=1, iteration=2)
    assert load(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_corrupt_file_error_names_path(tmp_path):
    model, _ = _trained_model()
    path = save(tmp_path / "iter_00000005.pth", model=model, epoch=0, iteration=5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load(path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        load(garbage)


def test_foreign_file_is_rejected(tmp_path):
    foreign = tmp_path / "resnet50.pth"
    torch.save(nn.Linear(2, 2).state_dict(), foreign)  # a bare state_dict
    with pytest.raises(CheckpointError, match=r"resnet50\.pth is not a det_engine checkpoint"):
        load(foreign)


def test_code_objects_are_refused(tmp_path):
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"format": checkpoint.FORMAT, "model": nn.Linear(2, 2)}, unsafe)
    with pytest.raises(CheckpointError, match=r"unsafe\.pth"):
        load(unsafe)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load(tmp_path / "nope.pth")


def test_latest(tmp_path):
    assert latest(tmp_path) is None
    assert latest(tmp_path / "missing") is None
    model = nn.Linear(1, 1)
    for it in (900, 1000, 50):
        save(checkpoint_path(tmp_path, it), model=model, epoch=0, iteration=it)
    (tmp_path / "iter_99999999.pth.tmp").write_bytes(b"")
    (tmp_path / "other.pth").write_bytes(b"")
    assert latest(tmp_path) == tmp_path / "iter_00001000.pth"


def test_resolve_takes_a_work_dirs_latest_checkpoint(tmp_path):
    model, _ = _trained_model()
    for iteration in (2, 10):
        save(checkpoint_path(tmp_path, iteration), model=model, epoch=0, iteration=iteration)
    assert checkpoint.resolve(tmp_path) == tmp_path / "iter_00000010.pth"
    assert checkpoint.resolve(tmp_path / "x.pth") == tmp_path / "x.pth"  # a file as given
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty holds no iter_\*\.pth checkpoint"):
        checkpoint.resolve(tmp_path / "empty")
