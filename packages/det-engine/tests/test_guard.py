import math

import pytest
import torch

from det_engine.guard import LossGuard, NonFiniteLossError, check_losses


def test_finite_losses_pass():
    check_losses({"loss_cls": torch.tensor(0.7), "loss_bbox": 0.2}, iteration=3)
    check_losses({}, iteration=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_loss_is_named(bad):
    losses = {"loss_cls": torch.tensor(0.7), "loss_bbox": torch.tensor(bad), "loss_mask": 0.1}
    with pytest.raises(NonFiniteLossError, match=r"'loss_bbox'.*iteration 1234") as info:
        check_losses(losses, iteration=1234)
    err = info.value
    assert (err.name, err.iteration) == ("loss_bbox", 1234)
    assert math.isnan(err.value) if math.isnan(bad) else err.value == bad
    assert isinstance(err, FloatingPointError)


def test_first_bad_loss_in_order_is_reported():
    losses = {"a": torch.tensor(1.0), "b": torch.tensor(float("inf")), "c": float("nan")}
    with pytest.raises(NonFiniteLossError, match="'b'"):
        check_losses(losses, iteration=0)


def test_loss_guard_checks_cpu_steps_at_once():
    guard = LossGuard(interval=50)
    guard.add({"a": torch.tensor(1.0)}, iteration=1)
    with pytest.raises(NonFiniteLossError, match=r"'b' is inf at iteration 2"):
        guard.add({"a": torch.tensor(1.0), "b": torch.tensor(float("inf"))}, iteration=2)


def test_deferred_loss_guard_names_the_first_bad_step_at_the_interval():
    guard = LossGuard(interval=3, defer=True)  # as on an accelerator
    guard.add({"a": torch.tensor(1.0), "b": torch.tensor(2.0)}, iteration=7)
    guard.add({"a": torch.tensor(float("nan")), "b": torch.tensor(2.0)}, iteration=8)
    with pytest.raises(NonFiniteLossError, match=r"'a' is nan at iteration 8"):
        guard.add({"a": torch.tensor(1.0), "b": torch.tensor(float("inf"))}, iteration=9)


def test_deferred_loss_guard_checks_what_is_pending_when_asked():
    guard = LossGuard(interval=50, defer=True)
    guard.add({"a": torch.tensor(1.0)}, iteration=1)
    guard.add({"a": torch.tensor(float("-inf"))}, iteration=2)  # not checked yet
    with pytest.raises(NonFiniteLossError, match=r"'a' is -inf at iteration 2"):
        guard.check()
    guard.check()  # nothing pending any more
