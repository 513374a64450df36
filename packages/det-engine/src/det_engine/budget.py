"""A wall-clock budget for a training run: the number of iterations is planned from the
measured step time so that training and the evaluation after it end by a deadline.

The plan is made once the first steps are timed (the very first ones are slower: memory
pools and kernel caches warm up) and revised as the run goes, so a machine that slows down
mid-run (another job starts) shortens the run instead of overrunning; the cosine schedule is
retargeted to the new length without a jump in the learning rate.
"""

from __future__ import annotations

import datetime
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from det_engine.trainer import Trainer


def parse_duration(text: str) -> float:
    """Seconds of a duration written ``10min``, ``90s``, ``1.5h`` or a plain number of minutes.

    Raises:
        ValueError: naming the text and the accepted forms.
    """
    units = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
    stripped = text.strip().lower()
    number = stripped.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = stripped[len(number) :] or "min"
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if unit not in units or not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"duration {text!r}: expected a positive duration such as 10min, 600s or 1.5h"
        )
    return value * units[unit]


@dataclass
class TimeBudget:
    """Plans and re-plans a run's length to end by ``deadline`` (a ``time.monotonic()`` time)
    with ``reserve_s`` seconds left for what comes after training (evaluation, drawing).

    Used as the Trainer's ``on_step`` hook. The step time is the mean over the last
    ``window`` steps, not counting the first ``skip`` steps of the run.

    Attributes:
        deadline: when everything must be done.
        reserve_s: seconds kept after training.
        skip: first steps not timed.
        min_timed: steps timed before the first plan.
        window: steps the step time is averaged over (the last ones).
        replan_every: steps between revisions of the plan.
        report: where the plan is said (print by default).
    """

    deadline: float
    reserve_s: float
    skip: int = 10
    min_timed: int = 5
    window: int = 40
    replan_every: int = 20
    report: Callable[[str], None] = print
    planned: int | None = field(default=None, init=False)
    _last: float | None = field(default=None, init=False)
    _times: deque = field(init=False)

    def __post_init__(self) -> None:
        self._times = deque(maxlen=self.window)

    def step_seconds(self) -> float | None:
        """The measured seconds per step, or None before enough steps are timed."""
        if len(self._times) < min(self.window, self.min_timed):
            return None
        return sum(self._times) / len(self._times)

    def __call__(self, trainer: Trainer) -> None:
        now = time.monotonic()
        if self._last is not None and trainer.iteration > self.skip:
            self._times.append(now - self._last)
        self._last = now
        left = self.deadline - self.reserve_s - now
        step = self.step_seconds()
        if left <= 0:  # out of time, planned or not
            target = trainer.iteration
        elif step is None:
            return
        elif self.planned is not None and trainer.iteration % self.replan_every != 0:
            return
        else:
            target = trainer.iteration + int(left / step)
        first = self.planned is None
        if target == trainer.max_iters:
            return
        self.planned = target
        trainer.set_length(target)
        if first and step is not None:
            ends = datetime.datetime.now() + datetime.timedelta(seconds=self.deadline - now)
            self.report(
                f"plan: about {target} iterations of {step:.2f} s: training and evaluation "
                f"end at {ends:%H:%M}"
            )
