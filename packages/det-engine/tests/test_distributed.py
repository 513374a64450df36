import ast
import os
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dist_env import free_port, set_torchrun_env

from det_engine import distributed
from det_engine.distributed import (
    DistributedTimeoutError,
    backend_for,
    gather_results,
    init_from_env,
)

DATASET_SIZE = 7


def _gather_worker(rank, world_size, port, out_dir):
    set_torchrun_env(rank, world_size, port)
    info = init_from_env(backend="gloo", timeout=timedelta(seconds=60))
    assert (info.rank, info.world_size) == (rank, world_size)
    assert distributed.get_rank() == rank and distributed.get_world_size() == world_size
    # A distributed sampler's share: rank r takes r, r + W, ... padded with repeats to 4.
    indices = list(range(rank, DATASET_SIZE, world_size))
    indices += indices[: 4 - len(indices)]
    results = [{"index": i, "boxes": torch.full((1, 4), float(i))} for i in indices]
    ordered = gather_results(results, indices, DATASET_SIZE)
    distributed.barrier(timedelta(seconds=30))
    if rank == 0:
        torch.save(ordered, os.path.join(out_dir, "gathered.pth"))
    else:
        assert ordered is None
    dist.destroy_process_group()


def _dead_rank_worker(rank, world_size, port, out_dir):
    set_torchrun_env(rank, world_size, port)
    init_from_env(backend="gloo", timeout=timedelta(seconds=60))
    if rank == 1:
        time.sleep(4)  # never reaches the barrier in time (as if dead or hung)
        return
    started = time.monotonic()
    try:
        distributed.barrier(timedelta(seconds=1))
    except DistributedTimeoutError as e:
        with open(os.path.join(out_dir, "error.txt"), "w") as f:
            f.write(f"{time.monotonic() - started:.1f}\n{e}")


def test_gather_results_in_dataset_order(tmp_path):
    mp.spawn(_gather_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ordered = torch.load(tmp_path / "gathered.pth", weights_only=True)
    assert [r["index"] for r in ordered] == list(range(DATASET_SIZE))
    assert [r["boxes"][0, 0].item() for r in ordered] == [float(i) for i in range(DATASET_SIZE)]


def test_barrier_fails_instead_of_hanging(tmp_path):
    mp.spawn(_dead_rank_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    waited, message = (tmp_path / "error.txt").read_text().split("\n", 1)
    assert float(waited) < 3.5
    assert "not every rank reached the barrier" in message


def test_single_process_defaults(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_from_env(backend="gloo")
    assert (info.rank, info.world_size, info.device.type) == (0, 1, "cpu")
    assert not dist.is_initialized()
    assert distributed.is_main_process()
    distributed.barrier()  # no-op
    assert gather_results(["b", "a"], [1, 0], 2) == ["a", "b"]
    with pytest.raises(ValueError, match=r"indices \[2\]"):
        gather_results(["a", "b"], [0, 1], 3)


def test_the_backend_follows_the_device(monkeypatch):
    assert backend_for("cpu") == "gloo" and backend_for(torch.device("cpu")) == "gloo"
    assert backend_for("cuda") == "nccl" and backend_for(torch.device("cuda", 1)) == "nccl"
    # On a machine with GPUs, --device cpu still gets gloo (no process group: one process).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_from_env(device="cpu")
    assert (info.backend, info.device.type) == ("gloo", "cpu")
    with pytest.raises(ValueError, match="backend 'nccl' carries CUDA tensors; device cpu"):
        init_from_env(backend="nccl", device="cpu")


def _cpu_on_a_gpu_machine_worker(rank, world_size, port, out_dir):
    # What torchrun ... --device cpu does on a machine with a GPU: CUDA is available, the
    # tensors are on the CPU, so the group must be gloo (NCCL would fail on them).
    set_torchrun_env(rank, world_size, port)
    torch.cuda.is_available = lambda: True
    info = init_from_env(device=torch.device("cpu"), timeout=timedelta(seconds=60))
    tensor = torch.full((2,), float(rank + 1))
    dist.all_reduce(tensor)  # a CPU tensor through the default group
    error = "cannot see data/coco/train2017" if rank == 1 else None
    errors = distributed.errors_of_all_ranks(error)
    assert distributed.errors_of_all_ranks("the same for all") == ["ranks 0, 1: the same for all"]
    shared = distributed.share_from_main({"bad": [3, 5]} if rank == 0 else None)
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(repr((info.backend, dist.get_backend(), tensor.tolist(), errors, shared)))
    dist.destroy_process_group()


def test_torchrun_on_cpu_uses_gloo_and_ranks_share_their_errors(tmp_path):
    mp.spawn(
        _cpu_on_a_gpu_machine_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True
    )
    expected = ("gloo", "gloo", [3.0, 3.0], ["rank 1: cannot see data/coco/train2017"])
    for rank in (0, 1):
        got = ast.literal_eval((tmp_path / f"rank{rank}.txt").read_text())
        assert got == (*expected, {"bad": [3, 5]})


def test_world_size_without_torchrun_env(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_from_env(backend="gloo")


# ------------------------------------------------------------------ a rank that dies
def _rank_dies_worker(rank, world_size, port, out_dir, where):
    set_torchrun_env(rank, world_size, port)
    torch.set_num_threads(1)
    init_from_env(backend="gloo", timeout=timedelta(seconds=10))
    if where == "collective":
        dist.all_reduce(torch.ones(3))  # one collective that both ranks finish
    if rank == 1:
        os._exit(3)  # dies without a word: no destroy_process_group, no barrier
    started = time.monotonic()
    try:
        if where == "barrier":
            distributed.barrier(timedelta(seconds=10))
        else:
            # the gradient all-reduce of the next DistributedDataParallel step
            dist.all_reduce(torch.ones(3))
    except Exception as e:
        with open(os.path.join(out_dir, "error.txt"), "w") as f:
            f.write(f"{time.monotonic() - started:.1f}\n{type(e).__name__}: {e}")
        # Exit 1 here rather than re-raise: after the error, gloo's transport thread can
        # still abort the interpreter's teardown (SIGABRT) on a loaded machine, which would
        # hide the exit code this test asserts.
        os._exit(1)
    with open(os.path.join(out_dir, "error.txt"), "w") as f:
        f.write("-1\nrank 0 went on without rank 1")


@pytest.mark.parametrize("where", ["barrier", "collective"])
def test_when_a_rank_dies_the_other_exits_with_an_error_in_bounded_time(tmp_path, where):
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [
        ctx.Process(target=_rank_dies_worker, args=(r, 2, port, str(tmp_path), where))
        for r in (0, 1)
    ]
    for p in procs:
        p.start()
    # Generous: starting two interpreters that import torch is slow on a loaded machine;
    # the bound that matters is the one rank 0 measures around its barrier / collective.
    for p in procs:
        p.join(timeout=180)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank hung after the other died"
    assert [p.exitcode for p in procs] == [1, 3]  # rank 0 failed with an exception
    waited, message = (tmp_path / "error.txt").read_text().split("\n", 1)
    assert 0 <= float(waited) < 12, message  # within the 10 s timeout (and a margin)
    if where == "barrier":
        assert message.startswith("DistributedTimeoutError: rank 0: not every rank reached")
