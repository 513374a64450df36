"""The training loop: warmup + step or cosine lr, guarded losses, atomic checkpoints, resume."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Sampler

from det_engine import checkpoint as ckpt
from det_engine.atomic_write import WriteError
from det_engine.distributed import is_distributed, is_main_process
from det_engine.guard import LossGuard, NonFiniteLossError
from det_engine.metric_log import MetricLogger
from det_engine.schedule import LRSchedule, clip_gradients


class UnreadableImagesError(RuntimeError):
    """More images failed to load during training than the run allows."""


class _SkipBatches(Sampler[list[int]]):
    """A batch sampler that drops its first ``skip`` batches (mid-epoch resume)."""

    def __init__(self, batches: BatchSampler, skip: int) -> None:
        self.batches = batches
        self.skip = skip

    def __iter__(self) -> Iterator[list[int]]:
        for i, batch in enumerate(self.batches):
            if i >= self.skip:
                yield batch

    def __len__(self) -> int:
        return max(len(self.batches) - self.skip, 0)


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    return obj


def wrap_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when torch.distributed is initialised, else itself."""
    if not is_distributed():
        return model
    device_ids = (
        [device.index if device.index is not None else 0] if device.type == "cuda" else None
    )
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=True
    )


class Trainer:
    """Trains a detector for a number of epochs (or until ``max_iters`` steps).

    One step: losses = model(images, metas, targets), their sum backward, optional gradient
    clipping, optimizer step with the lr of the schedule at that global iteration. Losses are
    checked for NaN/inf before the backward pass; a bad loss ends training with
    :class:`NonFiniteLossError` and leaves the last good checkpoint as it was.

    Checkpoints (``work_dir/iter_XXXXXXXX.pth``, atomic, rank 0 only) are written at the end
    of every epoch, at the end of training and when interrupted with Ctrl-C.

    Args:
        model: the detector (already on ``device``); wrapped in DDP when distributed.
        loader: training DataLoader yielding ``(images, metas, targets)``; its sampler's
            ``set_epoch`` is called each epoch. Exact resume needs ``num_workers=0`` or a
            sampler whose order depends only on (seed, epoch).
        optimizer: e.g. :func:`det_engine.schedule.build_sgd`.
        scheduler: a :class:`~det_engine.schedule.LRSchedule` (step or cosine).
        work_dir: where checkpoints and ``log.jsonl`` go.
        epochs: epochs of the full schedule.
        max_iters: stop after this many global steps (None: the whole schedule).
        grad_clip: max gradient 2-norm, or None.
        logger: a MetricLogger (default one writing into ``work_dir``).
        run: the run record (det_models.config.RunConfig) stored in every checkpoint.
        device: where batches go.
        log_interval: iterations between log lines of the default logger.
        tensorboard: the default logger also writes TensorBoard scalars (``work_dir/
            tensorboard``; needs the ``tensorboard`` package).
        amp: None, ``"bf16"`` or ``"fp16"``: the forward pass under ``torch.autocast`` on
            the device with that dtype; fp16 (CUDA only) scales the loss with a GradScaler
            (whose state is not checkpointed: it re-calibrates after a resume).
        on_step: called with the trainer after every optimizer step; it may change the run's
            length with :meth:`set_length`, e.g. to fit a wall-clock budget.
        max_skipped_images: images that may fail to load during the run (a dataset with
            ``skip_unreadable`` names them in ``meta["skipped_images"]``): each is warned
            about and counted in the log (``skipped_images``); one more ends the run with
            :class:`UnreadableImagesError`.
        normalize: called on each batch's images once they are on ``device``, with the
            batch's metas, e.g. ``det_models.normalize_batch`` for a loader that yields
            0..255 images (det_engine.data.batch_normalizer); None: the loader's images go
            to the model as they are.
        step: the whole step instead (forward, backward, clipping, optimizer step with the
            lr the schedule set): ``step(images, metas, targets) -> losses``, e.g. a
            :class:`~det_engine.cuda_graph.GraphedTrainStep`; amp and grad_clip are then its.
    """

    def __init__(
        self,
        model: nn.Module,
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        scheduler: LRSchedule,
        work_dir: str | os.PathLike,
        *,
        epochs: int,
        max_iters: int | None = None,
        grad_clip: float | None = None,
        logger: MetricLogger | None = None,
        run: Any = None,
        device: str | torch.device = "cpu",
        log_interval: int = 50,
        amp: str | None = None,
        tensorboard: bool = False,
        on_step: Callable[[Trainer], None] | None = None,
        max_skipped_images: int = 10,
        normalize: Callable[[torch.Tensor, list[dict[str, Any]]], torch.Tensor] | None = None,
        step: Callable[..., dict[str, torch.Tensor]] | None = None,
    ) -> None:
        if epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {epochs}")
        if max_iters is not None and max_iters <= 0:
            raise ValueError(f"max_iters must be > 0, got {max_iters}")
        self.device = torch.device(device)
        if amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' on the CPU")
        self.amp = amp
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        self.model = wrap_distributed(model, self.device)
        self.loader = loader
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.work_dir = Path(work_dir)
        self.iters_per_epoch = len(loader)
        if self.iters_per_epoch == 0:
            raise ValueError("the training loader yields no batch")
        self.epochs = epochs
        total = epochs * self.iters_per_epoch
        self.max_iters = min(total, max_iters) if max_iters is not None else total
        self.grad_clip = grad_clip
        self.logger = logger or MetricLogger(
            work_dir, self.max_iters, interval=log_interval, tensorboard=tensorboard
        )
        # Checked at every step on the CPU, every log interval on an accelerator.
        self.guard = LossGuard(getattr(self.logger, "interval", log_interval))
        self.run = run
        self.epoch = 0  # completed epochs
        self.iteration = 0  # completed optimizer steps
        self._step_rng: dict[str, Any] | None = None  # RNG states after the last step
        self.on_step = on_step
        if max_skipped_images < 0:
            raise ValueError(f"max_skipped_images must be >= 0, got {max_skipped_images}")
        self.max_skipped_images = max_skipped_images
        self.normalize = normalize
        self.step = step

    def set_length(self, iterations: int) -> None:
        """Ends the run after ``iterations`` steps instead: the loop, the logger's total, the
        run record the checkpoints store and a schedule that can be retargeted (a cosine
        one, without a jump in the lr) all follow. A :class:`~det_engine.budget.TimeBudget`
        calls it as it plans the run.

        Args:
            iterations: the new length, >= the iterations done (the run then stops after
                the current step).

        Raises:
            ValueError: ``iterations`` is below the iterations already done.
        """
        if iterations < self.iteration:
            raise ValueError(f"iterations must be >= the {self.iteration} done, got {iterations}")
        self.max_iters = iterations
        self.logger.total_iters = max(iterations, 1)
        if self.run is not None:  # the checkpoints record the length the run now has
            schedule = dataclasses.replace(self.run.schedule, max_iters=max(iterations, 1))
            self.run = dataclasses.replace(self.run, schedule=schedule)
        if iterations > self.iteration and hasattr(self.scheduler, "retarget"):
            self.scheduler.retarget(iterations, self.iteration)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, rng: dict[str, Any] | None = None) -> Path | None:
        """Writes ``work_dir/iter_<iteration>.pth`` on rank 0; returns its path (None elsewhere).

        ``rng``: RNG states to store instead of the current ones (see ``train``). The steps'
        losses not yet checked are checked first: no checkpoint holds weights past a NaN.
        """
        self.guard.check()
        if not is_main_process():
            return None
        return ckpt.save(
            ckpt.checkpoint_path(self.work_dir, self.iteration),
            model=self.model,
            epoch=self.epoch,
            iteration=self.iteration,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            run=self.run,
            rng=rng,
        )

    def resume(self, path: str | os.PathLike | None = None) -> Path:
        """Continues from ``path`` (a checkpoint, or a work dir: its latest checkpoint).

        Restores model, optimizer, schedule, epoch, iteration and RNG states.

        Raises:
            FileNotFoundError: no checkpoint there.
        """
        target = Path(path) if path is not None else self.work_dir
        if target.is_dir():
            found = ckpt.latest(target)
            if found is None:
                raise FileNotFoundError(f"no iter_*.pth checkpoint in {target}")
            target = found
        data = ckpt.load(target)
        self.epoch, self.iteration = ckpt.restore(
            data, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
        )
        return target

    # ------------------------------------------------------------------ loop
    def _epoch_batches(self, epoch: int, skip: int) -> DataLoader:
        sampler = self.loader.sampler
        batch_sampler = self.loader.batch_sampler
        for s in (sampler, batch_sampler, getattr(batch_sampler, "sampler", None)):
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)
        if skip == 0:
            return self.loader
        return DataLoader(
            self.loader.dataset,
            batch_sampler=_SkipBatches(batch_sampler, skip),
            collate_fn=self.loader.collate_fn,
            num_workers=self.loader.num_workers,
            pin_memory=self.loader.pin_memory,
        )

    def train(self) -> int:
        """Runs until ``max_iters``; returns the number of completed iterations.

        Raises:
            NonFiniteLossError: a loss became NaN or infinite (no checkpoint is written).
            KeyboardInterrupt: after saving a resumable checkpoint.
            WriteError: a checkpoint or the log could not be written (a full disk); the
                earlier checkpoints are intact and the message names the last one.
            UnreadableImagesError: more than ``max_skipped_images`` images failed to load.
        """
        self.model.train()
        # Ctrl-C can land in the middle of a step that has already drawn random numbers
        # (data augmentation, samplers, dropout): its checkpoint stores the RNG states as they
        # were after the last completed step, so a resume repeats that step exactly.
        self._step_rng = ckpt.rng_state()
        try:
            while self.iteration < self.max_iters:
                epoch = self.iteration // self.iters_per_epoch
                skip = self.iteration - epoch * self.iters_per_epoch
                self._train_epoch(epoch, skip)
                if self.iteration % self.iters_per_epoch == 0:
                    self.epoch = self.iteration // self.iters_per_epoch
                    self.save_checkpoint()
            self.guard.check()
        except KeyboardInterrupt:
            if is_main_process():
                path = self.save_checkpoint(rng=self._step_rng)
                print(f"interrupted: saved {path}; continue with --resume", flush=True)
            raise
        except NonFiniteLossError:
            if is_main_process():
                last = ckpt.latest(self.work_dir)
                print(f"training stopped; last good checkpoint: {last}", flush=True)
            raise
        except WriteError as err:
            last = ckpt.latest(self.work_dir)
            print(
                f"training stopped at iteration {self.iteration}: {err}. Last good checkpoint: "
                f"{last}; make room and continue with --resume",
                file=sys.stderr,
                flush=True,
            )
            raise
        self.logger.flush()
        if ckpt.latest(self.work_dir) != ckpt.checkpoint_path(self.work_dir, self.iteration):
            self.save_checkpoint()
        return self.iteration

    def _count_skipped(self, metas: Any) -> None:
        """Warns about and counts the images the loader could not read for this batch."""
        skipped = [
            reason
            for meta in (metas if isinstance(metas, list) else ())
            if isinstance(meta, dict)
            for reason in meta.get("skipped_images", ())
        ]
        if not skipped:
            return
        total = self.logger.count("skipped_images", len(skipped))
        for reason in skipped:
            print(
                f"warning: iteration {self.iteration + 1}: skipped an unreadable image ({total} "
                f"of at most {self.max_skipped_images}): {reason}",
                file=sys.stderr,
                flush=True,
            )
        if total > self.max_skipped_images:
            raise UnreadableImagesError(
                f"{total} images could not be read during training, more than the "
                f"{self.max_skipped_images} allowed (max_skipped_images); the last: "
                f"{skipped[-1]}. Check the data (python -m det_engine.data check ANN.json "
                f"--data-root DIR) and resume from the last checkpoint"
            )

    def _train_epoch(self, epoch: int, skip: int) -> None:
        end = time.perf_counter()
        batches = self._epoch_batches(epoch, skip)
        if skip:
            # Starting a DataLoader iterator draws its base seed from the global torch RNG.
            # The uninterrupted run drew it at the start of this epoch, before the state the
            # checkpoint holds; drawing again here would shift dropout etc. after a resume.
            rng = torch.get_rng_state()
            batch_iter = iter(batches)
            torch.set_rng_state(rng)
        else:
            batch_iter = iter(batches)
        for images, metas, targets in batch_iter:
            if self.iteration >= self.max_iters:
                break
            data_time = time.perf_counter() - end
            self._count_skipped(metas)
            images = images.to(self.device, non_blocking=True)
            if self.normalize is not None:
                images = self.normalize(images, metas)
            elif images.dtype == torch.uint8:
                raise TypeError(
                    "the loader yields uint8 images and the Trainer has no normalize: give "
                    "it one (det_engine.data.batch_normalizer) or normalise in the loader"
                )
            targets = _to_device(targets, self.device)
            lr = self.scheduler.apply(self.optimizer, self.iteration)
            if self.step is not None:  # e.g. a captured step (det_engine.cuda_graph)
                losses = self.step(images, metas, targets)
                self.guard.add(losses, self.iteration + 1)
            else:
                with torch.autocast(
                    self.device.type,
                    dtype=torch.float16 if self.amp == "fp16" else torch.bfloat16,
                    enabled=self.amp is not None,
                ):
                    losses = self.model(images, metas, targets)
                self.guard.add(losses, self.iteration + 1)
                total = sum(losses.values())
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(total).backward()
                    if self.grad_clip is not None:
                        self.scaler.unscale_(self.optimizer)
                        clip_gradients(self.model.parameters(), self.grad_clip)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    total.backward()
                    if self.grad_clip is not None:
                        clip_gradients(self.model.parameters(), self.grad_clip)
                    self.optimizer.step()
            self.iteration += 1
            self._step_rng = ckpt.rng_state()
            self.logger.update(
                epoch=epoch + 1,
                iteration=self.iteration,
                lr=lr,
                losses={k: v.detach() for k, v in losses.items()},
                time=time.perf_counter() - end,
                data_time=data_time,
            )
            if self.on_step is not None:
                self.on_step(self)
            end = time.perf_counter()


__all__ = ["Trainer", "UnreadableImagesError", "wrap_distributed"]
