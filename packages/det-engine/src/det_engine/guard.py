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
    device = next(
        (v.device for v in losses.values() if isinstance(v, torch.Tensor)), torch.device("cpu")
    )
    values = torch.stack(
        [
            torch.as_tensor(v, dtype=torch.float32, device=device).detach().reshape(())
            for v in losses.values()
        ]
    )
    if bool(torch.isfinite(values).all()):
        return
    for (name, _), v in zip(losses.items(), values.tolist(), strict=True):
        if not math.isfinite(v):
            raise NonFiniteLossError(name, iteration, v)
