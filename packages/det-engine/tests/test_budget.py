"""The wall-clock budget: durations, the plan from measured step times, re-planning when the
machine slows down, and the cosine schedule retargeted without a jump."""

from __future__ import annotations

import functools
import itertools
import types

import pytest

from det_engine import budget as budget_module
from det_engine.budget import TimeBudget, parse_duration
from det_engine.schedule import WarmupCosineSchedule


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10min", 600.0), ("600s", 600.0), ("1.5h", 5400.0), ("7", 420.0), (" 2m ", 120.0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-3min", "0", "10 parsecs", "nan"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="expected a positive duration"):
        parse_duration(text)


def test_retarget_continues_the_cosine_without_a_jump():
    schedule = WarmupCosineSchedule(1.0, 1000, warmup_iters=0, final_ratio=0.0)
    before = schedule.lr_at(400)
    schedule.retarget(600, 400)  # the run is shortened at iteration 400
    assert schedule.lr_at(400) == pytest.approx(before)
    assert schedule.lr_at(600) == pytest.approx(0.0, abs=1e-12)  # the end moved to 600
    lrs = [schedule.lr_at(i) for i in range(400, 601)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))  # still decaying
    # halfway through what is left, the progress is halfway from 0.4 to 1
    assert schedule.progress(500) == pytest.approx(0.7)
    restored = WarmupCosineSchedule(2.0, 5)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr_at(500) == pytest.approx(schedule.lr_at(500))
    with pytest.raises(ValueError, match="total_iters must be > iteration"):
        schedule.retarget(300, 400)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trainer(max_iters: int):
    """What of a Trainer a TimeBudget sees, with the Trainer's own set_length."""
    from det_engine.recipes import quickstart_run
    from det_engine.trainer import Trainer

    trainer = types.SimpleNamespace(
        iteration=0,
        max_iters=max_iters,
        logger=types.SimpleNamespace(total_iters=max_iters),
        scheduler=WarmupCosineSchedule(1.0, max_iters, warmup_iters=5),
        run=quickstart_run(),
    )
    trainer.set_length = functools.partial(Trainer.set_length, trainer)
    return trainer


def _run(monkeypatch, step_seconds, deadline=100.0, reserve=10.0):
    """Steps a fake trainer under a TimeBudget; ``step_seconds(i)`` is step i's duration."""
    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "monotonic", clock)
    said = []
    hook = TimeBudget(deadline=deadline, reserve_s=reserve, report=said.append)
    trainer = _trainer(max_iters=10_000)
    hook(trainer)  # the trainer's first call comes after step 1; the clock starts here
    while trainer.iteration < trainer.max_iters:
        clock.now += step_seconds(trainer.iteration)
        trainer.iteration += 1
        hook(trainer)
    return trainer, clock.now, said


def test_the_plan_fits_training_before_the_reserve(monkeypatch):
    # slow first steps (warm-up), then 0.5 s per step
    trainer, end, said = _run(monkeypatch, lambda i: 2.0 if i < 10 else 0.5)
    assert 89.0 <= end <= 90.0  # training ends by the deadline minus the reserve
    assert trainer.iteration == trainer.max_iters == trainer.logger.total_iters
    assert trainer.scheduler.total_iters == trainer.iteration
    assert trainer.run.schedule.max_iters == trainer.iteration  # what checkpoints record
    assert trainer.scheduler.lr_at(trainer.iteration) == pytest.approx(0.0, abs=1e-9)
    assert len(said) == 1 and said[0].startswith(f"plan: about {trainer.max_iters - 0}")


def test_a_slowdown_mid_run_shortens_it(monkeypatch):
    # 0.5 s per step until step 60, then twice as slow (another job started)
    trainer, end, _ = _run(monkeypatch, lambda i: 0.5 if i < 60 else 1.0)
    assert end <= 90.0 * 1.05  # overruns the training time by a few percent at most
    assert trainer.iteration < 170  # far fewer than the 180 steps planned at 0.5 s


def test_a_budget_already_spent_stops_training(monkeypatch):
    trainer, end, _ = _run(monkeypatch, lambda i: 5.0, deadline=100.0, reserve=10.0)
    assert trainer.iteration == trainer.max_iters
    assert end <= 90.0 + 5.0 * 2  # at most the step in flight past the plan
