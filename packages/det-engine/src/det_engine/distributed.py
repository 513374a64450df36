"""torch.distributed helpers: init from torchrun's environment (the backend following the
device), ranks, gathering, barriers, and stopping every rank together on one rank's error."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

# A gloo group beside an NCCL default group: object gathering and monitored barriers need
# a CPU backend (NCCL has no monitored_barrier, and pickled objects belong on the host).
_cpu_group: Any = None


class DistributedTimeoutError(RuntimeError):
    """Another rank did not reach a synchronisation point in time (it died or hangs)."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: global rank, world size, rank on its machine, device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str = "gloo"


def backend_for(device: torch.device | str) -> str:
    """The process-group backend for tensors on ``device``: ``nccl`` for CUDA, else ``gloo``."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(
    backend: str | None = None,
    timeout: timedelta = timedelta(minutes=30),
    *,
    device: torch.device | str | None = None,
) -> DistInfo:
    """Initialises the default process group from torchrun's environment variables.

    Reads RANK, WORLD_SIZE, LOCAL_RANK (MASTER_ADDR / MASTER_PORT are read by torch).
    Without WORLD_SIZE, or with WORLD_SIZE=1, nothing is initialised: a single process.

    Args:
        backend: ``nccl`` or ``gloo``; default :func:`backend_for` ``device``.
        timeout: how long a collective may wait for the other ranks before failing, so a
            dead rank ends the others with an error instead of a hang.
        device: where the tensors live (the command's ``--device``): gloo for the CPU even
            on a machine with GPUs, NCCL for CUDA. Left out: NCCL when CUDA is available.

    Returns:
        The process's :class:`DistInfo`; on GPU the current CUDA device is set to
        ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: an unknown backend, or NCCL asked for CPU tensors.
    """
    global _cpu_group
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if backend is None:
        if device is not None:
            backend = backend_for(device)
        else:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'nccl' or 'gloo', got {backend!r}")
    if backend == "nccl" and device is not None and torch.device(device).type != "cuda":
        raise ValueError(f"backend 'nccl' carries CUDA tensors; device {device} needs 'gloo'")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE={world_size} but {missing} are not set; launch with torchrun"
            )
        dist.init_process_group(backend=backend, timeout=timeout)
        _cpu_group = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
    return DistInfo(
        rank=rank, world_size=world_size, local_rank=local_rank, device=device, backend=backend
    )


def is_distributed() -> bool:
    """True when a default process group with more than one rank is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_local_rank() -> int:
    """This process's rank on its machine (torchrun's LOCAL_RANK; the rank without it)."""
    return int(os.environ.get("LOCAL_RANK", str(get_rank())))


def is_main_process() -> bool:
    """True on rank 0, the rank that logs and writes checkpoints."""
    return get_rank() == 0


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def gather_results(
    results: Sequence[Any], indices: Sequence[int], dataset_size: int
) -> list[Any] | None:
    """Collects per-image results of every rank on rank 0, in dataset order.

    A distributed sampler gives each rank an interleaved share of the dataset and pads
    it with repeats so every rank has as many; the repeats are dropped here.

    Args:
        results: this rank's results (tensors are moved to the CPU before sending).
        indices: dataset index of each of ``results``.
        dataset_size: number of images in the dataset.

    Returns:
        On rank 0 a list of ``dataset_size`` results, ``out[i]`` for dataset index i; None
        on the other ranks.

    Raises:
        ValueError: lengths differ, or an index of the dataset came from no rank.
    """
    if len(results) != len(indices):
        raise ValueError(f"results has {len(results)} entries but indices has {len(indices)}")
    pairs = list(zip((int(i) for i in indices), _to_cpu(list(results)), strict=True))
    if is_distributed():
        gathered: list[Any] = [None] * get_world_size() if is_main_process() else None  # type: ignore[assignment]
        dist.gather_object(pairs, gathered, dst=0, group=_cpu_group)
        if not is_main_process():
            return None
        pairs = [p for rank_pairs in gathered for p in rank_pairs]
    ordered: list[Any] = [None] * dataset_size
    seen = [False] * dataset_size
    for index, result in pairs:
        if not 0 <= index < dataset_size:
            raise ValueError(f"index {index} is outside the dataset of size {dataset_size}")
        if not seen[index]:
            ordered[index], seen[index] = result, True
    missing = [i for i, s in enumerate(seen) if not s]
    if missing:
        raise ValueError(
            f"no rank returned results for dataset indices {missing[:10]} "
            f"({len(missing)} of {dataset_size}); the sampler must cover the dataset"
        )
    return ordered


def barrier(timeout: timedelta = timedelta(minutes=5)) -> None:
    """Waits for every rank, failing instead of hanging when one does not arrive.

    Uses ``monitored_barrier`` on a gloo group (NCCL has none), which reports the ranks
    that did not arrive. A no-op when not distributed.

    Args:
        timeout: how long to wait for the other ranks.

    Raises:
        DistributedTimeoutError: a rank did not reach the barrier within ``timeout``.
    """
    if not is_distributed():
        return
    try:
        dist.monitored_barrier(group=_cpu_group, timeout=timeout, wait_all_ranks=True)
    except RuntimeError as e:
        raise DistributedTimeoutError(
            f"rank {get_rank()}: not every rank reached the barrier within {timeout} "
            f"(a rank died or hangs): {e}"
        ) from e


def errors_of_all_ranks(error: str | None) -> list[str]:
    """Every rank's error at a point all ranks reach, so that they stop together.

    A rank that cannot see the dataset or the weights would otherwise return while the
    others wait in their first collective until the timeout. Call it on every rank with
    this rank's error message (None when all went well).

    Args:
        error: this rank's error message, or None.

    Returns:
        The errors in rank order, as "rank R: message" when distributed ("ranks 0, 1:
        message" for one message of several ranks; just ``[error]`` or ``[]`` in a single
        process); the same list on every rank.
    """
    if not is_distributed():
        return [error] if error else []
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, error, group=_cpu_group)
    ranks: dict[str, list[int]] = {}
    for rank, message in enumerate(gathered):
        if message:
            ranks.setdefault(message, []).append(rank)
    return [
        f"rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}: {message}"
        for message, rs in ranks.items()
    ]


def share_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable object, through the CPU group); ``obj``
    itself when not distributed."""
    if not is_distributed():
        return obj
    box = [obj if is_main_process() else None]
    dist.broadcast_object_list(box, src=0, group=_cpu_group)
    return box[0]


def shutdown(timeout: timedelta = timedelta(minutes=1)) -> None:
    """Ends the process group once every rank got here: a barrier, then its destruction.

    Destroying a gloo group while another rank still talks to it can abort that rank at
    exit ("terminate called without an active exception"); after the barrier no rank does.
    A no-op when no process group is up. Call it where every rank ends normally, not on an
    error path (the others would wait for ``timeout``).

    Raises:
        DistributedTimeoutError: a rank did not arrive within ``timeout`` (the group is
            destroyed all the same).
    """
    global _cpu_group
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        barrier(timeout)
    finally:
        dist.destroy_process_group()
        _cpu_group = None


def stop_on_errors(error: str | None) -> bool:
    """Whether any rank failed at this point (``error``: this rank's message, or None).

    Every rank calls it at the same point; rank 0 prints all ranks' errors as one message
    ("error: rank 1: ...") and every rank returns together, instead of the healthy ranks
    waiting in their first collective for one that has already given up. In a single
    process it prints ``error: MESSAGE``.
    """
    errors = errors_of_all_ranks(error)
    if errors and is_main_process():
        print(f"error: {'; '.join(errors)}", file=sys.stderr)
    return bool(errors)
