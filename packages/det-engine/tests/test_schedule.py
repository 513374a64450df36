import pytest
import torch
from torch import nn

from det_engine.schedule import WarmupStepSchedule, build_sgd, clip_gradients, scaled_lr


def test_scaled_lr_linear_rule():
    assert scaled_lr(0.02, 16, 16) == pytest.approx(0.02)
    assert scaled_lr(0.02, 16, 8) == pytest.approx(0.01)
    assert scaled_lr(0.02, 16, 2) == pytest.approx(0.0025)
    with pytest.raises(ValueError, match="total_batch"):
        scaled_lr(0.02, 16, 0)


def test_warmup_and_steps_hand_computed():
    # 1x schedule, 1000 iterations per epoch, steps after epochs 8 and 11.
    s = WarmupStepSchedule(0.02, (8, 11), 1000)
    assert s.lr_at(0) == pytest.approx(0.02 / 3)
    assert s.lr_at(250) == pytest.approx(0.02 * (1 / 3 + 2 / 3 * 0.5))  # 0.013333
    assert s.lr_at(250) == pytest.approx(0.0133333333)
    assert s.lr_at(500) == pytest.approx(0.02)
    assert s.lr_at(7999) == pytest.approx(0.02)  # last iteration of epoch 7
    assert s.lr_at(8000) == pytest.approx(0.002)  # first iteration of epoch 8
    assert s.lr_at(10999) == pytest.approx(0.002)
    assert s.lr_at(11000) == pytest.approx(0.0002)
    assert s.lr_at(11999) == pytest.approx(0.0002)


def test_warmup_multiplies_decayed_lr_when_epochs_are_short():
    # 100 iterations per epoch: the first step (epoch 2) falls inside the 500-iteration warmup.
    s = WarmupStepSchedule(0.01, (2,), 100)
    assert s.lr_at(200) == pytest.approx(0.001 * (1 / 3 + 2 / 3 * 200 / 500))


def test_apply_sets_optimizer_and_state_round_trip():
    model = nn.Linear(2, 2)
    opt = build_sgd(model, 0.02)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 1e-4
    s = WarmupStepSchedule(0.02, (16, 22), 50)
    assert s.apply(opt, 0) == pytest.approx(0.02 / 3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02 / 3)
    t = WarmupStepSchedule(1.0, (1,), 1)
    t.load_state_dict(s.state_dict())
    assert [t.lr_at(i) for i in (0, 250, 800, 1100)] == [s.lr_at(i) for i in (0, 250, 800, 1100)]


def test_schedule_rejects_bad_steps():
    with pytest.raises(ValueError, match="steps"):
        WarmupStepSchedule(0.02, (11, 8), 10)


def test_build_sgd_skips_frozen():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    opt = build_sgd(model, 0.1)
    assert len(opt.param_groups[0]["params"]) == 2


def test_clip_gradients():
    p = nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([30.0, 40.0])  # norm 50
    q = nn.Parameter(torch.zeros(1))  # no grad: skipped
    norm = clip_gradients([p, q], max_norm=35.0)
    assert norm.item() == pytest.approx(50.0)
    assert p.grad.norm().item() == pytest.approx(35.0, rel=1e-4)
    assert p.grad.tolist() == pytest.approx([21.0, 28.0], rel=1e-4)
