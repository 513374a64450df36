"""A training run from start to end, written once: ``python -m det_engine.train`` (zoo rows)
and ``det_engine.quickstart`` (recipes) differ only in how they make their RunConfig, model
and datasets, and both hand them to :func:`train_and_evaluate`.

The run's sequence, in order:

1. :func:`start_process`: torch's CPU threads, the device (under torchrun its rank's),
   torch.distributed, the seeds (seed + rank) and the autocast dtype;
2. :func:`run_datasets`: the data check before any work, then the training and validation
   sets;
3. :func:`train_and_evaluate`: the model channels-last on its device, the loader, the
   Trainer (optionally fitted to a deadline by a TimeBudget), the resume, training, the
   evaluation, ``eval.json`` and the logger closed; its result carries the exit code:

   - 0 (``EXIT_OK``): trained (and evaluated);
   - 1 (``EXIT_FAILED``): a checkpoint or log write failed, or too many images could not
     be read; the last checkpoint is intact and named;
   - 2 (``EXIT_USAGE``): the run could not start (data, resume target: the message says why);
   - 3 (``EXIT_STOPPED``): a loss became NaN or infinite: the run stopped, its last good
     checkpoint kept;
   - 130 (``EXIT_INTERRUPTED``): Ctrl-C; a checkpoint was saved to resume from.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from det_engine import checkpoint as ckpt
from det_engine.atomic_write import WriteError
from det_engine.budget import TimeBudget
from det_engine.data import batch_normalizer, build_dataset, collate_fn
from det_engine.distributed import get_rank, init_from_env, is_main_process, stop_on_errors
from det_engine.evaluation.loop import default_metrics, detect, evaluate, write_metrics
from det_engine.guard import NonFiniteLossError
from det_engine.preflight import check_run_data
from det_engine.runtime import pick_device, resolve_amp, set_seed
from det_engine.schedule import build_lr_schedule, build_optimizer, scaled_lr
from det_engine.trainer import Trainer, UnreadableImagesError
from det_models import DataConfig, RunConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3
EXIT_INTERRUPTED = 130


def start_process(
    device: str | None, seed: int, amp: str | None, *, threads: int | None = None
) -> tuple[torch.device, str | None]:
    """Sets up this process for a run: (the device, the autocast dtype).

    Args:
        device: "cpu", "cuda" or None (CUDA when available); under torchrun with CUDA, the
            rank's GPU.
        seed: seeds python, numpy and torch with ``seed + rank``.
        amp: see det_engine.runtime.resolve_amp ("auto", "bf16", "fp16", "off" or None).
        threads: torch's CPU threads (None: torch's choice).

    Raises:
        det_engine.runtime.DeviceError: CUDA asked for and not there.
        ValueError: ``amp`` is unknown or "fp16" without CUDA.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    picked = pick_device(device)
    dtype = resolve_amp(amp, picked)
    dist_info = init_from_env(device=picked)  # gloo for the CPU, NCCL for CUDA
    if dist_info.world_size > 1 and picked.type == "cuda":
        picked = dist_info.device
    set_seed(seed + get_rank())
    return picked, dtype


def run_datasets(
    data_config: DataConfig,
    source: str,
    root: str | None,
    *,
    evaluate: bool = True,
    proposals: Mapping[str, Path | None] | None = None,
    check: bool = True,
    check_workers: int | None = None,
    skip_bad_images: bool = False,
):
    """(train set, val set or None) of a run, after the data check of every image and
    annotation (det_engine.preflight.check_run_data) unless ``check`` is False.

    Args:
        data_config: the run's data pipeline.
        source: coco, voc, shapes or an annotation JSON.
        root: the data root (None: the source's default).
        evaluate: also the validation set.
        proposals: {"train"/"val": proposals file or None} (Fast R-CNN).
        check, check_workers, skip_bad_images: the data check (skip_bad_images: leave the
            bad images out instead of stopping).

    Raises:
        det_engine.data.DataError, ValueError: data missing or bad; the message says what.
    """
    splits = ("train", "val") if evaluate else ("train",)
    exclude: dict[str, Collection[int]] = {split: () for split in splits}
    if check:
        exclude = check_run_data(
            data_config,
            source,
            root,
            splits,
            workers=check_workers,
            skip_bad_images=skip_bad_images,
        )
    proposals = proposals or {}
    sets = [
        build_dataset(
            data_config,
            source,
            root,
            split,
            train=split == "train",
            proposals=proposals.get(split),
            exclude_ids=exclude[split],
        )
        for split in splits
    ]
    return sets[0], (sets[1] if evaluate else None)


def make_loader(
    run: RunConfig, dataset, *, workers: int = 0, device: torch.device | str = "cpu"
) -> DataLoader:
    """The training loader of a run: ``run.batch_per_gpu`` images per batch, grouped by aspect
    ratio (shared among ``run.world_size`` ranks), padded as the run's data says; the
    dataset's ``skip_unreadable`` is turned on (the Trainer counts the images skipped).

    For a CUDA ``device`` the batches are in page-locked memory (their copy runs
    asynchronously) and polygon masks are rasterised in the loader, so the mask targets are
    cut on the device without reading the RoIs on the host (on the CPU polygons are drawn
    into each RoI's grid, the cheaper way there)."""
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
    gpu = torch.device(device).type == "cuda"
    return DataLoader(
        dataset,
        batch_size=per_gpu,
        sampler=sampler,
        collate_fn=collate_fn(run.data, bitmap_masks=gpu),
        num_workers=workers,
        persistent_workers=False,
        pin_memory=gpu,
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
    cuda_graph: bool = False,
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
        cuda_graph: the step captured as a CUDA graph per size bucket of the run's data
            (det_engine.cuda_graph.GraphedTrainStep); NotCapturableError names what cannot.
    """
    sched = run.schedule
    lr = run_lr(run)
    if sched.max_iters is not None:
        epochs = math.ceil(sched.max_iters / len(loader))
        max_iters = min(max_iters or sched.max_iters, sched.max_iters)
    else:
        epochs = sched.total_epochs
    optimizer = build_optimizer(model, sched, lr)
    step = None
    if cuda_graph:
        from det_engine.cuda_graph import GraphedTrainStep, data_buckets

        step = GraphedTrainStep(
            model,
            optimizer,
            buckets=data_buckets(run.data),
            grad_clip=sched.grad_clip_norm,
            amp=run.amp,
        )
    return Trainer(
        model,
        loader,
        optimizer,
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
        normalize=batch_normalizer(run.data),
        step=step,
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


@torch.no_grad()
def evaluation_seconds(
    model: nn.Module, dataset, run: RunConfig, device: torch.device, samples: int = 4
) -> float:
    """The evaluation's expected time: a few images of ``dataset`` timed, times its size."""
    collate = collate_fn(run.data)
    model.eval()
    count = min(samples, len(dataset))
    detect(model, *collate([dataset[0]]), device)  # the first call warms caches up
    start = time.perf_counter()
    for index in range(count):
        detect(model, *collate([dataset[index]]), device)
    per_image = (time.perf_counter() - start) / max(count, 1)
    model.train()
    return per_image * len(dataset)


@dataclass
class RunResult:
    """How a run ended.

    Attributes:
        exit_code: see the module's docstring.
        trainer: the Trainer (None when the run did not get that far).
        metrics: the evaluation's metrics on rank 0 (None: not evaluated, or another rank).
        checkpoint: the checkpoint the metrics belong to.
        train_seconds, eval_seconds: wall-clock time of training and of the evaluation.
        extra: what ``after_evaluation`` returned.
    """

    exit_code: int
    trainer: Trainer | None = None
    metrics: dict[str, Any] | None = None
    checkpoint: Path | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    extra: dict[str, Any] | None = None


def train_and_evaluate(
    run: RunConfig,
    model: nn.Module,
    train_set,
    val_set,
    work_dir: str | os.PathLike,
    *,
    device: torch.device,
    workers: int = 2,
    resume: str | None = None,
    max_iters: int | None = None,
    log_interval: int = 50,
    tensorboard: bool = False,
    max_skipped_images: int = 10,
    deadline: float | None = None,
    reserve_s: float = 0.0,
    after_evaluation: Callable[[Trainer, dict[str, Any]], dict[str, Any]] | None = None,
    cuda_graph: bool = False,
) -> RunResult:
    """Trains ``model`` as ``run`` says, evaluates it on ``val_set`` and writes eval.json.

    The model trains channels-last on every device (every conv output and gradient follows
    the weights' layout: NHWC, which oneDNN and cuDNN prefer), as det_models.Detector infers
    and det_engine.bench times it.

    Args:
        run: the run record (its schedule, data pipeline, batch and amp; stored in every
            checkpoint).
        model: the detector, built for ``run``.
        train_set, val_set: from :func:`run_datasets`; val_set None: no evaluation.
        work_dir: checkpoints, log.jsonl and eval.json.
        device, workers: where it trains; data loader processes.
        resume: None (start afresh), "" (the work dir's latest checkpoint) or a checkpoint
            or work dir to continue from.
        max_iters: stop earlier than the schedule, or None.
        log_interval, tensorboard: logging (see det_engine.metric_log.MetricLogger).
        max_skipped_images: images that may fail to load mid-run (see Trainer).
        deadline: a ``time.monotonic()`` time by which training, the evaluation and
            ``reserve_s`` more seconds must be done: the length is planned from the measured
            step time (det_engine.budget.TimeBudget); None: the schedule's length.
        reserve_s: seconds kept after the evaluation (with ``deadline``).
        after_evaluation: called on rank 0 after the evaluation with the trainer and the
            metrics; what it returns is added to eval.json's record and to the result.
        cuda_graph: capture the training step per size bucket (see make_trainer).

    Returns:
        The :class:`RunResult`; the reasons for a non-zero exit code are printed.
    """
    model.to(device=device, memory_format=torch.channels_last)
    loader = make_loader(run, train_set, workers=workers, device=device)
    budget = None
    if deadline is not None:
        spare = reserve_s
        if val_set is not None:
            spare += evaluation_seconds(model, val_set, run, device)
        budget = TimeBudget(deadline=deadline, reserve_s=spare)
    trainer = make_trainer(
        run,
        model,
        loader,
        work_dir,
        device=device,
        max_iters=max_iters,
        log_interval=log_interval,
        tensorboard=tensorboard,
        on_step=budget,
        max_skipped_images=max_skipped_images,
        cuda_graph=cuda_graph,
    )
    try:
        return _train_and_evaluate(
            run, trainer, train_set, val_set, device, resume, budget, after_evaluation
        )
    finally:
        trainer.logger.close()


def _train_and_evaluate(
    run, trainer, train_set, val_set, device, resume, budget, after_evaluation
) -> RunResult:
    work_dir = trainer.work_dir
    if resume is not None:
        error = None
        try:
            path = trainer.resume(resume or None)
        except (ckpt.CheckpointError, FileNotFoundError) as e:
            error = f"resume: {e}"
        if stop_on_errors(error):
            return RunResult(EXIT_USAGE, trainer)
        if is_main_process():
            print(f"resumed from {path} at iteration {trainer.iteration}", flush=True)
    if is_main_process():
        length = f"{trainer.max_iters} iterations"
        if budget is not None:
            length = "iterations planned from the step time to end by the deadline"
        print(
            f"training {run.name} on {run.dataset} ({len(train_set)} images, {run.world_size} x "
            f"{run.batch_per_gpu} per iteration, lr {run_lr(run):g}, "
            f"{run.amp or 'float32'}) for {length} on {device}",
            flush=True,
        )
    start = time.perf_counter()
    try:
        trainer.train()
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return RunResult(EXIT_STOPPED, trainer)
    except KeyboardInterrupt:  # the trainer saved a checkpoint to resume from
        return RunResult(EXIT_INTERRUPTED, trainer)
    except WriteError:  # the trainer said what failed and which checkpoint to resume from
        return RunResult(EXIT_FAILED, trainer)
    except UnreadableImagesError as e:
        print(f"error: {e} (last checkpoint: {ckpt.latest(work_dir)})", file=sys.stderr)
        return RunResult(EXIT_FAILED, trainer)
    result = RunResult(EXIT_OK, trainer, train_seconds=time.perf_counter() - start)
    result.checkpoint = ckpt.checkpoint_path(work_dir, trainer.iteration)
    if val_set is None:
        return result
    start = time.perf_counter()
    result.metrics = evaluate_run(run, trainer.model, val_set, device)
    result.eval_seconds = time.perf_counter() - start
    if result.metrics is None:  # not rank 0
        return result
    trainer.logger.log_eval(trainer.epoch, trainer.iteration, result.metrics)
    if after_evaluation is not None:
        result.extra = after_evaluation(trainer, result.metrics)
    write_metrics(
        work_dir / "eval.json",
        result.metrics,
        {
            "run": run.name,
            "checkpoint": str(result.checkpoint),
            "data": run.dataset,
            "iterations": trainer.iteration,
            "images_per_iteration": run.batch_per_gpu * run.world_size,
            "seconds_per_iteration": round(result.train_seconds / max(trainer.iteration, 1), 3),
            "train_seconds": round(result.train_seconds, 1),
            "eval_seconds": round(result.eval_seconds, 1),
            "amp": run.amp,
            "seed": run.seed,
            **(result.extra or {}),
        },
    )
    return result


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "RunResult",
    "evaluate_run",
    "evaluation_seconds",
    "make_loader",
    "make_trainer",
    "run_datasets",
    "run_lr",
    "start_process",
    "train_and_evaluate",
]
