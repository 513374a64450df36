"""Stops training on a NaN or infinite loss, naming the loss and the iteration."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite.

    Attributes:
        name: the loss's name (``loss_cls``, ...).
        iteration: the global iteration at which it happened.
        value: the offending value (nan, inf or -inf).
    """

    def __init__(self, name: str, iteration: int, value: float) -> None:
        super().__init__(
            f"loss {name!r} is {value} at iteration {iteration}; training stopped (the last "
            "checkpoint is the last good state; try a lower lr or gradient clipping)"
        )
        self.name = name
        self.iteration = iteration
        self.value = value


def check_losses(losses: Mapping[str, torch.Tensor | float], iteration: int) -> None:
    """Raises if any loss is NaN or infinite.

    The losses are stacked where they are and checked there, so a finite step waits on the
    device once (one ``bool`` of one tensor), not once per loss; only a failing step copies
    the values to name the culprit.

    Args:
        losses: named scalar losses, as a detector returns them in train mode.
        iteration: the current global iteration, for the message.

    Raises:
        NonFiniteLossError: naming the first non-finite loss (in dict order).
    """
    if not losses:
        return
    values = _stacked(losses)
    if bool(torch.isfinite(values).all()):
        return
    for (name, _), v in zip(losses.items(), values.tolist(), strict=True):
        if not math.isfinite(v):
            raise NonFiniteLossError(name, iteration, v)


class LossGuard:
    """check_losses for a training loop that must not wait for the device at every step.

    On the CPU every step is checked at once (reading a CPU tensor waits for nothing), so a
    bad step is never taken. On an accelerator the steps' losses are kept where they are and
    checked together every ``interval`` steps and whenever ``check`` is called (before a
    checkpoint is written, at the end): the error still names the first bad iteration and
    loss, the weights have moved past it, and no checkpoint holds them.

    Args:
        interval: the most steps checked together (the log interval: the losses reach the
            host then anyway).
        defer: check every ``interval`` steps (True) or at every step (False); None: defer
            where the losses are not on the CPU.
    """

    def __init__(self, interval: int, *, defer: bool | None = None) -> None:
        self.interval = max(int(interval), 1)
        self.defer = defer
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._names: tuple[str, ...] = ()

    def add(self, losses: Mapping[str, torch.Tensor | float], iteration: int) -> None:
        """Records one step's losses; raises NonFiniteLossError when a check finds one."""
        if not losses:
            return
        values = _stacked(losses)
        defer = values.device.type != "cpu" if self.defer is None else self.defer
        if not defer:
            self.check()
            check_losses(losses, iteration)
            return
        self._names = tuple(losses)
        self._pending.append((iteration, values))
        if len(self._pending) >= self.interval:
            self.check()

    def check(self) -> None:
        """Checks every step recorded since the last check (one read of the device)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = torch.stack([v for _, v in pending])
        if bool(torch.isfinite(values).all()):
            return
        for (iteration, _), row in zip(pending, values.tolist(), strict=True):
            for name, v in zip(self._names, row, strict=True):
                if not math.isfinite(v):
                    raise NonFiniteLossError(name, iteration, v)


def _stacked(losses: Mapping[str, torch.Tensor | float]) -> torch.Tensor:
    device = next(
        (v.device for v in losses.values() if isinstance(v, torch.Tensor)), torch.device("cpu")
    )
    return torch.stack(
        [
            torch.as_tensor(v, dtype=torch.float32, device=device).detach().reshape(())
            for v in losses.values()
        ]
    )
