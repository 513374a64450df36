"""The Trainer's fault handling on a tiny toy model: NaN stop, exact resume, 2-process DDP."""

from __future__ import annotations

import errno
import io
import json
import os
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dist_env import free_port, set_torchrun_env
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from det_engine import checkpoint as ckpt
from det_engine.atomic_write import WriteError
from det_engine.distributed import init_from_env, shutdown
from det_engine.guard import NonFiniteLossError
from det_engine.metric_log import MetricLogger
from det_engine.schedule import WarmupStepSchedule
from det_engine.trainer import Trainer, UnreadableImagesError

IN, OUT = 4, 2


class ToyData(Dataset):
    """n deterministic samples: x in R^4, y = W x + noise, as (image, meta, target)."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(n, IN, generator=g)
        w = torch.randn(OUT, IN, generator=g)
        self.y = self.x @ w.T + 0.1 * torch.randn(n, OUT, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], {"index": i}, {"y": self.y[i]}


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    metas = [b[1] for b in batch]
    targets = {"y": torch.stack([b[2]["y"] for b in batch])}
    return images, metas, targets


class ToyDetector(nn.Module):
    """A linear layer with the detector interface: ``model(images, metas, targets)`` -> losses.

    Records every loss it returns and the weights it saw at the start of each call; with
    ``nan_at=k`` its ``loss_bad`` is NaN on the k-th call.
    """

    def __init__(self, dropout: float = 0.0, nan_at: int | None = None, init: int = 0) -> None:
        super().__init__()
        self.fc = nn.Linear(IN, OUT)
        g = torch.Generator().manual_seed(init)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(OUT, IN, generator=g) * 0.5)
            self.fc.bias.copy_(torch.randn(OUT, generator=g) * 0.5)
        self.drop = nn.Dropout(dropout)
        self.nan_at = nan_at
        self.calls = 0
        self.losses: list[float] = []
        self.seen: list[dict[str, torch.Tensor]] = []

    def forward(self, images, metas, targets):
        self.calls += 1
        self.seen.append({k: v.detach().clone() for k, v in self.state_dict().items()})
        pred = self.fc(self.drop(images))
        loss_reg = ((pred - targets["y"]) ** 2).mean()
        losses = {"loss_reg": loss_reg}
        if self.nan_at is not None:
            bad = pred.sum() * 0.0
            losses["loss_bad"] = bad + float("nan") if self.calls == self.nan_at else bad
        self.losses.append(float(sum(losses.values()).detach()))
        return losses


class EpochSeededSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch): exact mid-epoch resume."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _trainer(model, loader, work_dir, *, epochs, max_iters=None, momentum=0.9):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=momentum, weight_decay=1e-4)
    scheduler = WarmupStepSchedule(0.05, [1], len(loader), warmup_iters=2, gamma=0.5)
    total = epochs * len(loader)
    logger = MetricLogger(work_dir, total, interval=1, stream=io.StringIO())
    return Trainer(
        model,
        loader,
        optimizer,
        scheduler,
        work_dir,
        epochs=epochs,
        max_iters=max_iters,
        grad_clip=10.0,
        logger=logger,
    )


# ---------------------------------------------------------------------------------- NaN stop
def test_nan_loss_stops_with_name_and_iteration_and_keeps_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    # 2 iterations per epoch; the 4th forward (iteration 4) returns a NaN loss_bad
    model = ToyDetector(nan_at=4)
    loader = DataLoader(ToyData(4), batch_size=2, shuffle=False, collate_fn=collate)
    trainer = _trainer(model, loader, tmp_path, epochs=3)
    with pytest.raises(NonFiniteLossError, match=r"loss 'loss_bad' is nan at iteration 4") as e:
        trainer.train()
    assert (e.value.name, e.value.iteration) == ("loss_bad", 4)
    assert trainer.iteration == 3  # the bad step was not taken

    # only the end-of-epoch checkpoint after iteration 2 exists: nothing at or after 4
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["iter_00000002.pth"]
    assert not list(tmp_path.glob(".*.tmp"))
    data = ckpt.load(ckpt.latest(tmp_path))
    assert (data["epoch"], data["iteration"]) == (1, 2)
    # its weights are those after 2 steps (seen by the 3rd call), not the later ones
    for k, v in data["model"].items():
        assert torch.equal(v, model.seen[2][k])
    assert not torch.equal(data["model"]["fc.weight"], model.fc.weight.detach())

    # and it loads into a fresh model and trainer
    fresh = ToyDetector(init=1)
    resumed = _trainer(fresh, loader, tmp_path / "again", epochs=3)
    assert resumed.resume(tmp_path) == tmp_path / "iter_00000002.pth"
    assert resumed.iteration == 2 and resumed.epoch == 1
    assert torch.equal(fresh.fc.weight, model.seen[2]["fc.weight"])


# ---------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("mid_epoch", [False, True], ids=["epoch-boundary", "mid-epoch"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, mid_epoch):
    data = ToyData(6 if not mid_epoch else 4)
    batch = 2

    def loader():
        # epoch boundary: 3 iterations per epoch, shuffled with the global torch RNG (so the
        # restored RNG state matters); mid-epoch: 2 per epoch, stop after 3 (inside epoch 2)
        sampler = RandomSampler(data) if not mid_epoch else EpochSeededSampler(len(data))
        return DataLoader(data, batch_size=batch, sampler=sampler, collate_fn=collate)

    torch.manual_seed(7)
    full_model = ToyDetector(dropout=0.3)
    torch.manual_seed(7)
    full = _trainer(full_model, loader(), tmp_path / "full", epochs=3 if mid_epoch else 2)
    assert full.train() == 6
    assert len(full_model.losses) == 6

    torch.manual_seed(7)
    first_model = ToyDetector(dropout=0.3)
    torch.manual_seed(7)
    first = _trainer(
        first_model, loader(), tmp_path / "part", epochs=3 if mid_epoch else 2, max_iters=3
    )
    assert first.train() == 3
    assert first_model.losses == full_model.losses[:3]
    assert ckpt.latest(tmp_path / "part") == tmp_path / "part" / "iter_00000003.pth"

    # a new process would start from other RNG states and fresh weights
    torch.manual_seed(999)
    second_model = ToyDetector(dropout=0.3, init=1)
    second = _trainer(second_model, loader(), tmp_path / "part", epochs=3 if mid_epoch else 2)
    second.resume()
    assert second.iteration == 3
    assert second.train() == 6
    assert second_model.losses == full_model.losses[3:]
    for k, v in full_model.state_dict().items():
        assert torch.equal(second_model.state_dict()[k], v), k
    final = ckpt.load(tmp_path / "part" / "iter_00000006.pth")
    expected = full.optimizer.state_dict()["state"]
    for i, state in final["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], expected[i]["momentum_buffer"])


def test_full_disk_at_a_checkpoint_keeps_the_last_one_and_resume_reproduces_the_losses(
    tmp_path, monkeypatch, capsys
):
    data = ToyData(4)

    def loader():
        # 2 iterations per epoch, checkpoints at 2, 4, 6; dropout draws from the global RNG
        return DataLoader(data, batch_size=2, sampler=EpochSeededSampler(4), collate_fn=collate)

    torch.manual_seed(5)
    full_model = ToyDetector(dropout=0.5)
    assert _trainer(full_model, loader(), tmp_path / "full", epochs=3).train() == 6

    real_save = torch.save
    saves = []

    def disk_fills_at_the_second_checkpoint(obj, f):
        saves.append(obj["iteration"])
        if len(saves) == 2:
            f.write(b"PK\x03\x04 the start of a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f)

    monkeypatch.setattr(ckpt.torch, "save", disk_fills_at_the_second_checkpoint)
    torch.manual_seed(5)
    model = ToyDetector(dropout=0.5)
    work = tmp_path / "part"
    with pytest.raises(WriteError, match=r"writing the checkpoint .*iter_00000004\.pth failed"):
        _trainer(model, loader(), work, epochs=3).train()
    assert saves == [2, 4]
    err = capsys.readouterr().err
    assert "training stopped at iteration 4" in err and "No space left on device" in err
    assert f"Last good checkpoint: {work / 'iter_00000002.pth'}" in err
    monkeypatch.undo()
    # the failed write left nothing: no half file, no temp file; the last good one loads
    assert sorted(p.name for p in work.iterdir() if p.suffix != ".jsonl") == ["iter_00000002.pth"]
    assert ckpt.load(ckpt.latest(work))["iteration"] == 2

    torch.manual_seed(999)
    resumed_model = ToyDetector(dropout=0.5, init=1)
    resumed = _trainer(resumed_model, loader(), work, epochs=3)
    assert resumed.resume() == work / "iter_00000002.pth"
    assert resumed.train() == 6
    assert resumed_model.losses == full_model.losses[2:]
    for k, v in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[k], v), k


class SkippingData(ToyData):
    """ToyData whose samples 1 and 3 say the loader replaced an unreadable image."""

    def __getitem__(self, i: int):
        x, meta, target = super().__getitem__(i)
        if i in (1, 3):
            meta = {**meta, "skipped_images": [f"cannot decode image file {i}.jpg"]}
        return x, meta, target


@pytest.mark.parametrize("limit", [2, 1])
def test_skipped_images_are_warned_counted_in_the_log_and_limited(tmp_path, capsys, limit):
    loader = DataLoader(SkippingData(4), batch_size=1, shuffle=False, collate_fn=collate)
    trainer = _trainer(ToyDetector(), loader, tmp_path, epochs=1)
    trainer.max_skipped_images = limit
    if limit == 2:
        assert trainer.train() == 4
    else:
        with pytest.raises(UnreadableImagesError, match=r"2 images could not be read .* 1 allowed"):
            trainer.train()
        assert trainer.iteration == 3  # the batch that went over the limit was not trained on
    err = capsys.readouterr().err
    assert "warning: iteration 2: skipped an unreadable image (1 of at most" in err
    assert "iteration 4: skipped an unreadable image (2 of at most" in err
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r.get("skipped_images", 0) for r in records] == [0, 1, 1, 2][: len(records)]
    assert trainer.logger.counters == {"skipped_images": 2}


# ---------------------------------------------------------------------------------- DDP
N_DDP, STEPS = 8, 2
PER_RANK = 2


def _ddp_worker(rank, world_size, port, out_dir, momentum):
    set_torchrun_env(rank, world_size, port)
    torch.set_num_threads(1)
    init_from_env(backend="gloo", timeout=timedelta(seconds=60))
    try:
        data = ToyData(N_DDP)
        # step s: rank r takes samples 4s + 2r, 4s + 2r + 1 (one process takes 4s .. 4s + 3)
        indices = [i for s in range(STEPS) for i in range(4 * s + 2 * rank, 4 * s + 2 * rank + 2)]
        loader = DataLoader(data, batch_size=PER_RANK, sampler=indices, collate_fn=collate)
        model = ToyDetector()
        trainer = _trainer(model, loader, out_dir, epochs=1, momentum=momentum)
        assert isinstance(trainer.model, nn.parallel.DistributedDataParallel)
        trainer.train()
        torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pth"))
        shutdown()  # both ranks arrive before either destroys its half of the group
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_two_process_gloo_equals_one_process_with_the_same_total_batch(tmp_path, momentum):
    mp.spawn(
        _ddp_worker,
        args=(2, free_port(), str(tmp_path), momentum),
        nprocs=2,
        join=True,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pth", weights_only=True) for r in (0, 1)]

    loader = DataLoader(ToyData(N_DDP), batch_size=2 * PER_RANK, shuffle=False, collate_fn=collate)
    single = ToyDetector()
    init = {k: v.clone() for k, v in single.state_dict().items()}
    _trainer(single, loader, tmp_path / "single", epochs=1, momentum=momentum).train()

    # rank 0 wrote the checkpoint; both ranks hold the weights of the single process
    assert ckpt.latest(tmp_path) == tmp_path / f"iter_{STEPS:08d}.pth"
    for k, v in single.state_dict().items():
        assert not torch.allclose(v, init[k])
        for state in ranks:
            torch.testing.assert_close(state[k], v, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------- normalize
class Uint8Data(ToyData):
    """ToyData's samples as uint8 "images" (values 0..255)."""

    def __getitem__(self, i: int):
        x, meta, target = super().__getitem__(i)
        return (x * 40 + 128).clamp(0, 255).to(torch.uint8), meta, target


def test_uint8_batches_are_normalised_on_the_device_before_the_model(tmp_path):
    loader = DataLoader(Uint8Data(4), batch_size=2, shuffle=False, collate_fn=collate)
    model = ToyDetector()
    inputs = []
    model.fc.register_forward_hook(lambda m, i, o: inputs.append(i[0]))
    trainer = _trainer(model, loader, tmp_path, epochs=1)
    with pytest.raises(TypeError, match="uint8 images and the Trainer has no normalize"):
        trainer.train()

    seen_metas = []

    def normalize(images, metas):
        seen_metas.append(metas)
        return (images.float() - 128) / 40

    inputs.clear()
    trainer.normalize = normalize
    assert trainer.train() == 2
    expected = [(Uint8Data(4)[i][0].float() - 128) / 40 for i in range(4)]
    torch.testing.assert_close(torch.cat(inputs), torch.stack(expected), rtol=0, atol=0)
    assert [[m["index"] for m in metas] for metas in seen_metas] == [[0, 1], [2, 3]]


# ---------------------------------------------------------------------------------- AMP
def test_bf16_autocast_on_cpu_trains_and_fp16_needs_cuda(tmp_path):
    loader = DataLoader(ToyData(4), batch_size=2, shuffle=False, collate_fn=collate)
    model = ToyDetector()
    init = model.fc.weight.detach().clone()
    trainer = _trainer(model, loader, tmp_path, epochs=1)
    trainer.amp = "bf16"
    dtypes = []
    model.fc.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    assert trainer.train() == 2
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert model.fc.weight.dtype == torch.float32
    assert not torch.equal(model.fc.weight.detach(), init)
    with pytest.raises(ValueError, match="amp='fp16' needs a CUDA device"):
        Trainer(model, loader, trainer.optimizer, trainer.scheduler, tmp_path, epochs=1, amp="fp16")


# ---------------------------------------------------------------------------------- Ctrl-C
class InterruptedDetector(ToyDetector):
    """Ctrl-C arrives during the ``interrupt_at``-th forward, after dropout drew its numbers."""

    def __init__(self, interrupt_at: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.interrupt_at = interrupt_at

    def forward(self, images, metas, targets):
        losses = super().forward(images, metas, targets)
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return losses


@pytest.mark.parametrize("interrupt_at", [2, 4], ids=["first-epoch", "second-epoch"])
def test_ctrl_c_mid_iteration_saves_the_last_step_and_resumes_exactly(tmp_path, interrupt_at):
    data = ToyData(6)

    def loader():
        # 3 iterations per epoch in an order of (seed, epoch); dropout draws from the global RNG
        return DataLoader(data, batch_size=2, sampler=EpochSeededSampler(6), collate_fn=collate)

    torch.manual_seed(3)
    full_model = ToyDetector(dropout=0.5)
    full = _trainer(full_model, loader(), tmp_path / "full", epochs=2)
    assert full.train() == 6

    torch.manual_seed(3)
    model = InterruptedDetector(interrupt_at, dropout=0.5)
    first = _trainer(model, loader(), tmp_path / "part", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        first.train()
    done = interrupt_at - 1
    assert first.iteration == done
    saved = ckpt.latest(tmp_path / "part")
    assert saved == tmp_path / "part" / f"iter_{done:08d}.pth"
    assert (ckpt.load(saved)["epoch"], ckpt.load(saved)["iteration"]) == (done // 3, done)

    torch.manual_seed(999)
    resumed_model = ToyDetector(dropout=0.5, init=1)
    resumed = _trainer(resumed_model, loader(), tmp_path / "part", epochs=2)
    resumed.resume()
    assert resumed.train() == 6
    # the interrupted step's dropout draws are not in the checkpoint's RNG state
    assert resumed_model.losses == full_model.losses[done:]
    for k, v in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[k], v), k
