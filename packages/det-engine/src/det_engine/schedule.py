"""The 2019 zoo's optimisation (scaled base lr, linear warmup, step decay, SGD, clipping) and
the from-scratch recipe's (AdamW, linear warmup, cosine decay)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

# The zoo's reference: lr 0.02 for 8 GPUs x 2 images.
ZOO_BASE_LR = 0.02
ZOO_BASE_BATCH = 16


def scaled_lr(base_lr: float, base_batch: int, total_batch: int) -> float:
    """Scales a learning rate linearly with the total batch (the linear scaling rule).

    Args:
        base_lr: lr tuned for ``base_batch`` images per step (the zoo: 0.02).
        base_batch: images per step that ``base_lr`` was tuned for (the zoo: 16).
        total_batch: images per step actually used (images per GPU x world size).

    Returns:
        ``base_lr * total_batch / base_batch``.
    """
    if base_lr <= 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    if base_batch <= 0 or total_batch <= 0:
        raise ValueError(
            f"base_batch and total_batch must be > 0, got base_batch={base_batch}, "
            f"total_batch={total_batch}"
        )
    return base_lr * total_batch / base_batch


class LRSchedule:
    """A learning-rate schedule: ``lr_at`` gives the lr of an iteration, ``apply`` sets it."""

    def lr_at(self, iteration: int) -> float:
        """The lr for the optimizer step at global ``iteration`` (0-based)."""
        raise NotImplementedError

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int) -> float:
        """Sets every param group of ``optimizer`` to the lr of ``iteration``; returns it."""
        lr = self.lr_at(iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr


class WarmupStepSchedule(LRSchedule):
    """Step decay at given epochs, with a linear warmup over the first iterations.

    The lr at a global iteration ``i`` (counted from 0 over the whole run) is
    ``base_lr * gamma ** (number of steps <= epoch)`` where ``epoch = i // iters_per_epoch``,
    and during warmup (``i < warmup_iters``) that value times a factor set by the policy:
    "linear": ``warmup_ratio + (1 - warmup_ratio) * i / warmup_iters``; "constant":
    ``warmup_ratio``; "exp": ``warmup_ratio ** (1 - i / warmup_iters)``. So with the zoo's
    defaults (linear) the lr goes from ``base_lr / 3`` at iteration 0 to ``base_lr`` at
    iteration 500.

    Args:
        base_lr: lr after warmup and before the first step (already batch-scaled).
        steps: epochs (0-based count of completed epochs) at which lr is multiplied by
            ``gamma``: ``(8, 11)`` for 1x, ``(16, 22)`` for 2x, ``(16, 19)`` for 20e.
        iters_per_epoch: optimizer steps in one epoch.
        warmup_iters: iterations of linear warmup (0 disables it).
        warmup_ratio: lr factor at iteration 0.
        gamma: decay factor at each step.
        warmup: "linear", "constant", "exp", or None (no warmup).
    """

    WARMUPS = ("linear", "constant", "exp")

    def __init__(
        self,
        base_lr: float,
        steps: Sequence[int],
        iters_per_epoch: int,
        *,
        warmup_iters: int = 500,
        warmup_ratio: float = 1.0 / 3.0,
        gamma: float = 0.1,
        warmup: str | None = "linear",
    ) -> None:
        if warmup is not None and warmup not in self.WARMUPS:
            raise ValueError(
                f"warmup must be one of {', '.join(self.WARMUPS)} or None, got {warmup!r}"
            )
        if base_lr <= 0:
            raise ValueError(f"base_lr must be > 0, got {base_lr}")
        if iters_per_epoch <= 0:
            raise ValueError(f"iters_per_epoch must be > 0, got {iters_per_epoch}")
        if warmup_iters < 0:
            raise ValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
        if not 0.0 < warmup_ratio <= 1.0:
            raise ValueError(f"warmup_ratio must be in (0, 1], got {warmup_ratio}")
        if list(steps) != sorted(steps) or any(s <= 0 for s in steps):
            raise ValueError(f"steps must be increasing positive epochs, got {list(steps)}")
        self.base_lr = float(base_lr)
        self.steps = tuple(int(s) for s in steps)
        self.iters_per_epoch = int(iters_per_epoch)
        self.warmup_iters = int(warmup_iters)
        self.warmup_ratio = float(warmup_ratio)
        self.gamma = float(gamma)
        self.warmup = warmup

    def lr_at(self, iteration: int) -> float:
        """The lr for the optimizer step at global ``iteration`` (0-based)."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        epoch = iteration // self.iters_per_epoch
        decays = sum(1 for s in self.steps if epoch >= s)
        lr = self.base_lr * self.gamma**decays
        if self.warmup is not None and iteration < self.warmup_iters:
            progress = iteration / self.warmup_iters
            if self.warmup == "linear":
                lr *= self.warmup_ratio + (1.0 - self.warmup_ratio) * progress
            elif self.warmup == "constant":
                lr *= self.warmup_ratio
            else:
                lr *= self.warmup_ratio ** (1.0 - progress)
        return lr

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings as plain numbers and lists (checkpoint-safe)."""
        return {
            "base_lr": self.base_lr,
            "steps": list(self.steps),
            "iters_per_epoch": self.iters_per_epoch,
            "warmup_iters": self.warmup_iters,
            "warmup_ratio": self.warmup_ratio,
            "gamma": self.gamma,
            "warmup": self.warmup,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores settings saved by :meth:`state_dict` (without "warmup": linear)."""
        self.__init__(  # type: ignore[misc]
            state["base_lr"],
            state["steps"],
            state["iters_per_epoch"],
            warmup_iters=state["warmup_iters"],
            warmup_ratio=state["warmup_ratio"],
            gamma=state["gamma"],
            warmup=state.get("warmup", "linear"),
        )


def zoo_step_schedule(schedule: Any, base_lr: float, iters_per_epoch: int) -> WarmupStepSchedule:
    """The step schedule of a zoo row's ScheduleConfig, read whole.

    The ScheduleConfig counts ``epochs`` and ``lr_steps`` in epochs of the training set
    repeated ``dataset_repeat`` times (SSD: 5 or 10); the trainer's epoch is one pass over
    the set, so the steps fall at ``lr_steps * dataset_repeat`` passes (SSD300 COCO: the lr
    drops after 80 and 110 of its 120 passes).

    Args:
        schedule: a det_models.zoo.ScheduleConfig (lr_steps, lr_gamma, warmup,
            warmup_iters, warmup_ratio, dataset_repeat).
        base_lr: the lr after warmup, already scaled to the batch in use.
        iters_per_epoch: iterations of one pass over the training set.

    Returns:
        The WarmupStepSchedule.
    """
    repeat = int(schedule.dataset_repeat)
    if repeat < 1:
        raise ValueError(f"schedule.dataset_repeat must be >= 1, got {repeat}")
    return WarmupStepSchedule(
        base_lr,
        [step * repeat for step in schedule.lr_steps],
        iters_per_epoch,
        warmup_iters=schedule.warmup_iters,
        warmup_ratio=schedule.warmup_ratio,
        gamma=schedule.lr_gamma,
        warmup=schedule.warmup,
    )


class WarmupCosineSchedule(LRSchedule):
    """Linear warmup from zero, then cosine decay to ``final_ratio * base_lr`` at ``total_iters``.

    The lr at global iteration ``i`` (0-based) is ``base_lr * min(1, (i + 1) / warmup_iters)
    * (final_ratio + (1 - final_ratio) * (1 + cos(pi * i / total_iters)) / 2)``; past
    ``total_iters`` it stays at the final value. Same interface as
    :class:`WarmupStepSchedule` (``lr_at``, ``apply``, ``state_dict``).

    Args:
        base_lr: peak lr.
        total_iters: iterations of the whole run (> 0).
        warmup_iters: iterations of linear warmup (0 disables it).
        final_ratio: lr at the end as a fraction of ``base_lr``, in [0, 1].
    """

    def __init__(
        self,
        base_lr: float,
        total_iters: int,
        *,
        warmup_iters: int = 0,
        final_ratio: float = 0.0,
    ) -> None:
        if base_lr <= 0:
            raise ValueError(f"base_lr must be > 0, got {base_lr}")
        if total_iters <= 0:
            raise ValueError(f"total_iters must be > 0, got {total_iters}")
        if warmup_iters < 0:
            raise ValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
        if not 0.0 <= final_ratio <= 1.0:
            raise ValueError(f"final_ratio must be in [0, 1], got {final_ratio}")
        self.base_lr = float(base_lr)
        self.total_iters = int(total_iters)
        self.warmup_iters = int(warmup_iters)
        self.final_ratio = float(final_ratio)
        # Where the run was when its length last changed (see `retarget`): (iteration,
        # progress); the decay runs linearly in iterations from there to total_iters.
        self.anchor = (0, 0.0)

    def progress(self, iteration: int) -> float:
        """How far along the cosine ``iteration`` is, from 0 to 1."""
        start, done = self.anchor
        if iteration >= self.total_iters:
            return 1.0
        return done + (1.0 - done) * max(iteration - start, 0) / (self.total_iters - start)

    def retarget(self, total_iters: int, iteration: int) -> None:
        """Changes the run's length to ``total_iters`` at ``iteration`` without a jump in lr:
        the decay continues from where it is and reaches its end at the new length (a
        wall-clock budget re-plans the length of a run as its step time is measured)."""
        if total_iters <= iteration:
            raise ValueError(f"total_iters must be > iteration {iteration}, got {total_iters}")
        self.anchor = (int(iteration), self.progress(iteration))
        self.total_iters = int(total_iters)

    def lr_at(self, iteration: int) -> float:
        """The lr for the optimizer step at global ``iteration`` (0-based)."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        cosine = (1.0 + math.cos(math.pi * self.progress(iteration))) / 2.0
        lr = self.base_lr * (self.final_ratio + (1.0 - self.final_ratio) * cosine)
        if iteration < self.warmup_iters:
            lr *= (iteration + 1) / self.warmup_iters
        return lr

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings as plain numbers (checkpoint-safe)."""
        return {
            "base_lr": self.base_lr,
            "total_iters": self.total_iters,
            "warmup_iters": self.warmup_iters,
            "final_ratio": self.final_ratio,
            "anchor": list(self.anchor),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores settings saved by :meth:`state_dict`."""
        self.__init__(  # type: ignore[misc]
            state["base_lr"],
            state["total_iters"],
            warmup_iters=state["warmup_iters"],
            final_ratio=state["final_ratio"],
        )
        start, done = state.get("anchor", (0, 0.0))
        self.anchor = (int(start), float(done))


def build_lr_schedule(schedule: Any, base_lr: float, iters_per_epoch: int) -> LRSchedule:
    """The learning-rate schedule of a ScheduleConfig: the zoo's step decay
    (:func:`zoo_step_schedule`), or cosine decay over the run (``max_iters``, else its
    epochs) after ``warmup_iters`` of linear warmup.

    Args:
        schedule: a det_models.config.ScheduleConfig.
        base_lr: the lr after warmup, already scaled to the batch in use.
        iters_per_epoch: iterations of one pass over the training set.
    """
    if schedule.lr_policy == "step":
        return zoo_step_schedule(schedule, base_lr, iters_per_epoch)
    total = schedule.max_iters or schedule.total_epochs * iters_per_epoch
    return WarmupCosineSchedule(
        base_lr,
        total,
        warmup_iters=schedule.warmup_iters if schedule.warmup else 0,
        final_ratio=schedule.final_lr_ratio,
    )


def build_optimizer(model: nn.Module, schedule: Any, lr: float) -> torch.optim.Optimizer:
    """The optimizer of a ScheduleConfig (``optimizer``: "sgd" or "adamw") at ``lr``."""
    if schedule.optimizer == "adamw":
        return build_adamw(model, lr, weight_decay=schedule.weight_decay)
    return build_sgd(model, lr, momentum=schedule.momentum, weight_decay=schedule.weight_decay)


def build_sgd(
    model: nn.Module,
    lr: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> torch.optim.SGD:
    """SGD over the model's trainable parameters with the zoo's settings.

    Args:
        model: the detector; frozen parameters (``requires_grad=False``) are left out.
        lr: initial lr (the schedule overwrites it each iteration).
        momentum: SGD momentum (zoo: 0.9).
        weight_decay: L2 weight decay on every parameter (zoo: 1e-4).

    Returns:
        A ``torch.optim.SGD`` with one param group. Where every parameter is a float tensor
        on the CPU or a CUDA device it is torch's fused implementation: the same update, one
        kernel for all parameters (a ResNet-50's 25.6M parameters: 6.1 ms a step instead of
        18.0 ms for the for-each form on 2 CPU threads), and under a GradScaler (fp16) the
        step takes the loss scale and the found-inf flag as device tensors, so skipping a
        step with an overflow reads nothing on the host.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("build_sgd: model has no parameter with requires_grad=True")
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None
    )


def build_adamw(model: nn.Module, lr: float, *, weight_decay: float = 0.05) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on weights only.

    Biases and normalisation parameters (every parameter with fewer than 2 dimensions)
    get no weight decay.

    Args:
        model: the detector; frozen parameters are left out.
        lr: initial lr (the schedule overwrites it each iteration).
        weight_decay: decoupled weight decay of the conv and linear weights.

    Returns:
        A ``torch.optim.AdamW`` with two param groups (decayed, not decayed). Where every
        parameter is a float tensor on the CPU or a CUDA device it is torch's fused
        implementation (the same update; on 2 CPU threads a step of the quickstart's 3.4M
        parameters takes 1.9 ms instead of 11.5 ms).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("build_adamw: model has no parameter with requires_grad=True")
    decayed = [p for p in params if p.ndim > 1]
    plain = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, fused=fused or None)


def clip_gradients(
    parameters: Iterable[torch.Tensor], max_norm: float, norm_type: float = 2.0
) -> torch.Tensor:
    """Rescales gradients so their total norm is at most ``max_norm``.

    The zoo's Faster/Mask R-CNN, RetinaNet and Cascade configs used ``max_norm=35,
    norm_type=2``; SSD used none.

    Args:
        parameters: parameters whose ``.grad`` to clip; those without a gradient are skipped.
        max_norm: largest allowed total norm (> 0).
        norm_type: the p of the p-norm.

    Returns:
        Tensor[] the total gradient norm before clipping.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return torch.tensor(0.0)
    return nn.utils.clip_grad_norm_(with_grad, max_norm=max_norm, norm_type=norm_type)
