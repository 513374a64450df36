import dataclasses
import math

import pytest
import torch
from torch import nn

from det_engine.schedule import (
    WarmupCosineSchedule,
    WarmupStepSchedule,
    build_adamw,
    build_sgd,
    clip_gradients,
    scaled_lr,
    zoo_step_schedule,
)


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


def _sgd_pair():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    copy = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    copy.load_state_dict(model.state_dict())
    return model, copy


def test_build_sgd_is_fused_and_steps_as_torch_sgd():
    model, reference = _sgd_pair()
    opt = build_sgd(model, 0.1)
    assert opt.defaults["fused"] is True
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(4, 8)
    for _ in range(3):
        for net, o in ((model, opt), (reference, ref_opt)):
            o.zero_grad()
            net(x).square().sum().backward()
            o.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("overflow", [False, True])
def test_a_loss_scaled_step_reads_nothing_on_the_host(overflow):
    """fp16's GradScaler with the fused SGD: unscale, clip, step (or skip on an overflow)
    and the scale's update stay on the device; the CPU scaler stands in for CUDA's."""
    from det_heads.sync_audit import SyncAudit

    model, reference = _sgd_pair()
    opt = build_sgd(model, 0.1)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = torch.randn(4, 8)
    loss = model(x).square().sum()
    if overflow:
        loss = loss * torch.tensor(float("inf"))
    with SyncAudit() as audit:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        clip_gradients(model.parameters(), 35.0)
        scaler.step(opt)
        scaler.update()
    assert audit.counts() == {}
    before = reference.state_dict()
    if overflow:  # the step was skipped and the scale halved
        for name, value in model.state_dict().items():
            assert torch.equal(value, before[name]), name
        assert scaler.get_scale() == 2.0**9
    else:  # the same step as unscaled SGD (the scale is a power of two: exact)
        reference(x).square().sum().backward()
        clip_gradients(reference.parameters(), 35.0)
        ref_opt.step()
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
        assert scaler.get_scale() == 2.0**10


def test_clip_gradients():
    p = nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([30.0, 40.0])  # norm 50
    q = nn.Parameter(torch.zeros(1))  # no grad: skipped
    norm = clip_gradients([p, q], max_norm=35.0)
    assert norm.item() == pytest.approx(50.0)
    assert p.grad.norm().item() == pytest.approx(35.0, rel=1e-4)
    assert p.grad.tolist() == pytest.approx([21.0, 28.0], rel=1e-4)


def test_cosine_schedule_hand_computed():
    s = WarmupCosineSchedule(0.002, 1000, warmup_iters=100, final_ratio=0.05)
    assert s.lr_at(0) == pytest.approx(0.002 * 0.01 * (0.05 + 0.95 * 1.0))  # warmup step 1/100
    assert s.lr_at(99) == pytest.approx(0.002 * (0.05 + 0.95 * (1 + math.cos(math.pi * 0.099)) / 2))
    assert s.lr_at(500) == pytest.approx(0.002 * (0.05 + 0.95 * 0.5))  # half way: cos = 0
    assert s.lr_at(1000) == pytest.approx(0.002 * 0.05)
    assert s.lr_at(5000) == pytest.approx(0.002 * 0.05)  # stays at the final value
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    assert s.apply(opt, 500) == pytest.approx(0.00105)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.00105)
    restored = WarmupCosineSchedule(1.0, 1)
    restored.load_state_dict(s.state_dict())
    assert [restored.lr_at(i) for i in (0, 250, 999)] == [s.lr_at(i) for i in (0, 250, 999)]
    with pytest.raises(ValueError, match="total_iters"):
        WarmupCosineSchedule(0.1, 0)
    with pytest.raises(ValueError, match="final_ratio"):
        WarmupCosineSchedule(0.1, 10, final_ratio=1.5)


def test_build_adamw_decays_weights_only():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    opt = build_adamw(model, 1e-3, weight_decay=0.05)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model[2].weight)}
    expected_plain = {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)}
    assert {id(p) for p in plain["params"]} == expected_plain
    with pytest.raises(ValueError, match="requires_grad"):
        build_adamw(nn.Sequential(), 1e-3)


def test_build_adamw_steps_follow_the_adamw_update():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    weight, bias = model.weight.detach().clone(), model.bias.detach().clone()
    opt = build_adamw(model, 1e-2, weight_decay=0.1)
    m = {"w": torch.zeros_like(weight), "b": torch.zeros_like(bias)}
    v = {"w": torch.zeros_like(weight), "b": torch.zeros_like(bias)}
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, 1e-2
    for step in range(1, 4):
        grads = {"w": torch.randn_like(weight), "b": torch.randn_like(bias)}
        model.weight.grad, model.bias.grad = grads["w"].clone(), grads["b"].clone()
        opt.step()
        for key, value, decay in (("w", weight, 0.1), ("b", bias, 0.0)):
            value.mul_(1 - lr * decay)
            m[key] = beta1 * m[key] + (1 - beta1) * grads[key]
            v[key] = beta2 * v[key] + (1 - beta2) * grads[key] ** 2
            m_hat = m[key] / (1 - beta1**step)
            v_hat = v[key] / (1 - beta2**step)
            value.sub_(lr * m_hat / (v_hat.sqrt() + eps))
        torch.testing.assert_close(model.weight.detach(), weight, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.bias.detach(), bias, rtol=1e-5, atol=1e-6)


def test_warmup_policies():
    kwargs = {"warmup_iters": 100, "warmup_ratio": 0.1}
    linear = WarmupStepSchedule(1.0, (8,), 1000, warmup="linear", **kwargs)
    constant = WarmupStepSchedule(1.0, (8,), 1000, warmup="constant", **kwargs)
    exp = WarmupStepSchedule(1.0, (8,), 1000, warmup="exp", **kwargs)
    none = WarmupStepSchedule(1.0, (8,), 1000, warmup=None, **kwargs)
    assert linear.lr_at(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert constant.lr_at(0) == constant.lr_at(99) == pytest.approx(0.1)
    assert exp.lr_at(0) == pytest.approx(0.1) and exp.lr_at(50) == pytest.approx(0.1**0.5)
    assert none.lr_at(0) == 1.0
    assert all(s.lr_at(100) == 1.0 for s in (linear, constant, exp))
    restored = WarmupStepSchedule(1.0, (1,), 1)
    restored.load_state_dict(exp.state_dict())
    assert restored.warmup == "exp" and restored.lr_at(50) == exp.lr_at(50)
    with pytest.raises(ValueError, match="warmup must be one of"):
        WarmupStepSchedule(1.0, (8,), 1000, warmup="cosine")


def test_zoo_step_schedule_reads_the_schedule_config_whole():
    from det_models import zoo

    # SSD300 COCO: 24 epochs of the training set repeated 5 times, steps at 16 and 22 of
    # them; the trainer's epoch is one pass, so the lr drops after passes 80 and 110.
    ssd = zoo.get("ssd300", "vgg16", "120e").schedule
    s = zoo_step_schedule(ssd, 1e-3, 10)
    assert s.steps == (80, 110) and ssd.total_epochs == 120
    assert s.lr_at(799) == pytest.approx(1e-3) and s.lr_at(800) == pytest.approx(1e-4)
    assert (s.warmup, s.warmup_iters, s.warmup_ratio) == ("linear", 500, 1 / 3)
    changed = dataclasses.replace(ssd, warmup=None, lr_gamma=0.5, dataset_repeat=1)
    s = zoo_step_schedule(changed, 1e-3, 10)
    assert s.lr_at(0) == 1e-3 and s.steps == (16, 22) and s.lr_at(160) == pytest.approx(5e-4)
