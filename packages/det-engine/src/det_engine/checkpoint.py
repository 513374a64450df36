"""Atomic, data-only training checkpoints: model, optimizer, schedule, progress, RNG and the
run record (det_models.config.RunConfig, as plain data: det_models.checkpoint rebuilds the
model from it)."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from det_engine.atomic_write import write_atomically

# One error type for checkpoints that cannot be used, here and in det_models.checkpoint.
from det_models import CheckpointError, RunConfig, read_checkpoint, to_plain

FORMAT = "det_engine.checkpoint"
# 2: the run record ("run") replaced the free-form "config" dict of version 1.
VERSION = 2
_REQUIRED_KEYS = ("format", "version", "model", "epoch", "iteration")
_NAME = re.compile(r"^iter_(\d+)\.pth$")


def checkpoint_path(work_dir: str | os.PathLike, iteration: int) -> Path:
    """The file name used for the checkpoint after ``iteration`` steps: ``iter_00001234.pth``."""
    return Path(work_dir) / f"iter_{iteration:08d}.pth"


def latest(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest iteration in ``work_dir``, or None when there is none.

    Only files named by :func:`checkpoint_path` count (not temp files, not foreign .pth).
    """
    directory = Path(work_dir)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file: ``path`` itself, or for a work dir its latest ``iter_*.pth``.

    Raises:
        FileNotFoundError: a folder without one, naming it.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    found = latest(path)
    if found is None:
        raise FileNotFoundError(f"{path} holds no iter_*.pth checkpoint")
    return found


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel keeps the real model in .module; save without the prefix.
    return model.module if hasattr(model, "module") else model


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA, when initialised) RNG states as plain data."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores RNG states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    epoch: int,
    iteration: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    run: RunConfig | None = None,
    rng: dict[str, Any] | None = None,
) -> Path:
    """Writes a checkpoint atomically: a reader sees the old file or the new one, never half.

    The data goes to a temp file in the same directory, is fsync-ed, then renamed over
    ``path`` with ``os.replace`` (atomic on POSIX and Windows within one file system;
    :func:`det_engine.atomic_write.write_atomically`).

    Args:
        path: destination file; its directory is created if missing.
        model: the model (a DistributedDataParallel wrapper is unwrapped).
        epoch: completed epochs.
        iteration: completed optimizer steps (global).
        optimizer: optional optimizer whose ``state_dict`` is stored.
        scheduler: optional object with ``state_dict()`` (e.g. ``WarmupStepSchedule``).
        run: the run record (stored as plain data), or None.
        rng: RNG states from :func:`rng_state` taken earlier; default the current ones.

    Returns:
        The path written.

    Raises:
        det_engine.atomic_write.WriteError: the write failed (a full disk, an I/O error);
            ``path`` keeps its previous content and the earlier checkpoints are untouched.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "iteration": int(iteration),
        "rng": rng if rng is not None else rng_state(),
        "run": to_plain(run) if run is not None else None,
    }
    # Ctrl-C or a full disk leaves the previous checkpoint as it was, and no debris.
    return write_atomically(path, lambda f: torch.save(payload, f), what="checkpoint")


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save` with ``torch.load(weights_only=True)``.

    Args:
        path: the checkpoint file.
        map_location: where tensors go (default CPU).

    Returns:
        The checkpoint dict: format, version, model, optimizer, scheduler, epoch,
        iteration, rng, run (plain data; det_models.config.from_plain reads it).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is corrupt, holds objects other than plain data, or is
            not a det_engine checkpoint (e.g. a bare state_dict from elsewhere).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; pass an existing file or a work dir that "
            "holds iter_*.pth files"
        )
    data = read_checkpoint(path, map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path} is not a det_engine checkpoint (expected keys {list(_REQUIRED_KEYS)}, "
            f"found {keys}); to start from foreign weights load them into the model directly"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks keys {missing}")
    if data["version"] > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {data['version']}, newer than this "
            f"det_engine reads ({VERSION})"
        )
    return data


def restore(
    checkpoint: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> tuple[int, int]:
    """Loads a checkpoint dict (from :func:`load`) into the training objects.

    Args:
        checkpoint: the dict returned by :func:`load`.
        model: receives the weights (strictly: every key must match).
        optimizer: receives the optimizer state when given and stored.
        scheduler: receives the scheduler state when given and stored.
        restore_rng: also restore python/numpy/torch/CUDA RNG states.

    Returns:
        ``(epoch, iteration)`` stored in the checkpoint.
    """
    _unwrap(model).load_state_dict(checkpoint["model"])  # copies into the parameters
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        _load_optimizer_in_place(optimizer, checkpoint["optimizer"])
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if restore_rng and "rng" in checkpoint:
        set_rng_state(checkpoint["rng"])
    return checkpoint["epoch"], checkpoint["iteration"]


def _load_optimizer_in_place(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """optimizer.load_state_dict, with the values of state tensors that already exist (SGD's
    momentum buffers) copied into those tensors: a captured CUDA graph
    (det_engine.cuda_graph) reads them where they are."""
    before = {p: dict(s) for p, s in optimizer.state.items()}
    optimizer.load_state_dict(state)
    for param, loaded in optimizer.state.items():
        for key, value in loaded.items():
            old = before.get(param, {}).get(key)
            if (
                isinstance(old, torch.Tensor)
                and isinstance(value, torch.Tensor)
                and old.shape == value.shape
                and old.dtype == value.dtype
                and old.device == value.device
            ):
                old.copy_(value)
                loaded[key] = old


def load_model_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Loads model weights only (strict) from one of our checkpoints or a plain state dict.

    Read with ``torch.load(weights_only=True)``; optimizer, schedule and progress are ignored.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unreadable, neither of the two formats, or keys/shapes that do not
            match the model (the message names them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    data = read_checkpoint(path)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        state = data.get("model")
    elif (
        isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values())
    ):
        state = data
    else:
        found = sorted(map(str, data))[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path} is neither a det_engine checkpoint nor a plain state dict of tensors "
            f"(found {found})"
        )
    try:
        _unwrap(model).load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"the weights in {path} do not fit the model: {e}") from e
