"""One training path for every command: a RunConfig, a model and a dataset made into a
Trainer (loader, optimizer, learning-rate schedule), and the run's evaluation.

``python -m det_engine.train`` (zoo rows) and ``det_engine.quickstart`` (recipes) differ only
in how they make their RunConfig and datasets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from det_engine.data import collate_fn
from det_engine.distributed import get_rank
from det_engine.evaluation.loop import default_metrics, evaluate
from det_engine.schedule import build_lr_schedule, build_optimizer, scaled_lr
from det_engine.trainer import Trainer
from det_models.config import RunConfig


def make_loader(run: RunConfig, dataset, *, workers: int = 0) -> DataLoader:
    """The training loader of a run: ``run.batch_per_gpu`` images per batch, grouped by aspect
    ratio (shared among ``run.world_size`` ranks), padded as the run's data says; the
    dataset's ``skip_unreadable`` is turned on (the Trainer counts the images skipped)."""
    from det_data import DistributedGroupSampler, GroupSampler

    per_gpu = run.batch_per_gpu
    if run.world_size > 1:
        sampler = DistributedGroupSampler(
            dataset, per_gpu, num_replicas=run.world_size, rank=get_rank(), seed=run.seed
        )
    else:
        sampler = GroupSampler(dataset, per_gpu, seed=run.seed)
    # An image that fails to load mid-run (changed after the data check) is replaced and
    # counted by the Trainer instead of ending the run.
    dataset.skip_unreadable = True
    return DataLoader(
        dataset,
        batch_size=per_gpu,
        sampler=sampler,
        collate_fn=collate_fn(run.data),
        num_workers=workers,
        persistent_workers=False,
    )


def run_lr(run: RunConfig) -> float:
    """The run's learning rate: the schedule's, scaled linearly to the batch in use."""
    sched = run.schedule
    return scaled_lr(sched.lr, sched.batch_size, run.batch_per_gpu * run.world_size)


def make_trainer(
    run: RunConfig,
    model: nn.Module,
    loader: DataLoader,
    work_dir: str | os.PathLike,
    *,
    device: torch.device,
    max_iters: int | None = None,
    log_interval: int = 50,
    tensorboard: bool = False,
    on_step: Callable[[Trainer], None] | None = None,
    max_skipped_images: int = 10,
) -> Trainer:
    """The Trainer of a run: its optimizer and schedule (``run.schedule``), gradient clipping,
    autocast (``run.amp``); the run record goes into every checkpoint.

    Args:
        run: the run.
        model: the detector, already on ``device``.
        loader: from :func:`make_loader`.
        work_dir: checkpoints and logs.
        device: where training runs.
        max_iters: stop earlier than the schedule (``--max-iters``), or None.
        log_interval, tensorboard: logging.
        on_step: called after every step (see Trainer).
        max_skipped_images: images that may fail to load mid-run (see Trainer).
    """
    sched = run.schedule
    lr = run_lr(run)
    if sched.max_iters is not None:
        epochs = math.ceil(sched.max_iters / len(loader))
        max_iters = min(max_iters or sched.max_iters, sched.max_iters)
    else:
        epochs = sched.total_epochs
    return Trainer(
        model,
        loader,
        build_optimizer(model, sched, lr),
        build_lr_schedule(sched, lr, len(loader)),
        work_dir,
        epochs=epochs,
        max_iters=max_iters,
        grad_clip=sched.grad_clip_norm,
        run=run,
        device=device,
        log_interval=log_interval,
        amp=run.amp,
        tensorboard=tensorboard,
        on_step=on_step,
        max_skipped_images=max_skipped_images,
    )


def evaluate_run(
    run: RunConfig,
    model: nn.Module,
    dataset,
    device: torch.device,
    *,
    metrics: list[str] | None = None,
    workers: int = 0,
) -> dict[str, Any] | None:
    """The run's model scored on ``dataset`` with the run's test pipeline: the requested
    ``metrics``, else the family's (proposal recall, bbox, and segm with masks). None on
    ranks other than 0."""
    return evaluate(
        model,
        dataset,
        device,
        metrics or default_metrics(run.model),
        workers=workers,
        collate_fn=collate_fn(run.data),
    )
