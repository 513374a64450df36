import math

import torch
import torch.nn.functional as F

from det_heads.losses import (
    CrossEntropyLoss,
    FocalLoss,
    SmoothL1Loss,
    binary_cross_entropy,
    cross_entropy,
    hard_negative_cross_entropy,
    smooth_l1,
)
from det_heads.sync_audit import SyncAudit


def test_smooth_l1_formula():
    pred = torch.tensor([[0.0, 0.05, 1.0, -2.0]])
    target = torch.zeros(1, 4)
    beta = 0.11
    expected = [0.0, 0.5 * 0.05**2 / beta, 1 - 0.5 * beta, 2 - 0.5 * beta]
    loss = smooth_l1(pred, target, beta, avg_factor=1.0)
    assert math.isclose(float(loss), sum(expected), rel_tol=1e-6)
    assert math.isclose(float(smooth_l1(pred, target, 0.0)), 3.05 / 4, rel_tol=1e-6)
    weighted = SmoothL1Loss(beta=1.0, loss_weight=2.0)(pred, target, torch.tensor([0.5]), 2.0)
    expected1 = 0 + 0.5 * 0.05**2 + 0.5 + 1.5
    assert math.isclose(float(weighted), 2.0 * 0.5 * expected1 / 2.0, rel_tol=1e-6)


def test_cross_entropy_formula_and_weights():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    z0 = math.log(math.exp(2) + 2)
    z1 = math.log(2 + math.e)
    expected = (z0 - 2) * 1.0 + (z1 - 0) * 3.0
    loss = cross_entropy(logits, labels, torch.tensor([1.0, 3.0]), avg_factor=4.0)
    assert math.isclose(float(loss), expected / 4, rel_tol=1e-6)


def test_binary_cross_entropy_treats_label_c_as_background():
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    labels = torch.tensor([1, 2])
    sig = torch.sigmoid(logits)
    expected = -(torch.log(1 - sig[0, 0]) + torch.log(sig[0, 1]) + torch.log(1 - sig[1]).sum())
    assert math.isclose(
        float(binary_cross_entropy(logits, labels, avg_factor=1.0)), float(expected), rel_tol=1e-6
    )
    assert CrossEntropyLoss(use_sigmoid=True)(logits, labels).item() == float(
        binary_cross_entropy(logits, labels)
    )


def test_focal_loss_formula():
    logits = torch.tensor([[0.3, -0.7], [1.5, 0.2]])
    labels = torch.tensor([0, 2])
    p = torch.sigmoid(logits)
    t = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = 0.25 * t + 0.75 * (1 - t)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    expected = (alpha_t * (1 - p_t) ** 2 * ce).sum() / 1.0
    loss = FocalLoss()(logits, labels, avg_factor=1.0)
    torch.testing.assert_close(loss, expected)


def test_hard_negative_mining_three_to_one():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 4, generator=g)
    labels = torch.full((20,), 3)
    labels[[2, 5]] = torch.tensor([0, 1])
    valid = torch.ones(20, dtype=torch.bool)
    valid[7] = False
    per_anchor = F.cross_entropy(logits, labels, reduction="none")
    neg_losses = sorted(
        (float(per_anchor[i]) for i in range(20) if labels[i] == 3 and valid[i]), reverse=True
    )
    expected = float(per_anchor[2] + per_anchor[5]) + sum(neg_losses[:6])
    loss = hard_negative_cross_entropy(logits, labels, valid, 3.0)
    assert math.isclose(float(loss), expected, rel_tol=1e-6)
    no_pos = hard_negative_cross_entropy(logits, torch.full((20,), 3), valid, 3.0)
    assert float(no_pos) == 0.0


def test_losses_with_counted_normalisers_never_wait_on_the_host():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 4, generator=g, requires_grad=True)
    labels = torch.full((20,), 3)
    labels[[2, 5]] = torch.tensor([0, 1])
    weight = (torch.rand(20, generator=g) > 0.3).float()
    count = (weight > 0).sum().clamp(min=1)  # a count made on the device, kept there
    deltas = torch.randn(20, 4, generator=g)
    with SyncAudit(where=True) as audit:
        losses = [
            CrossEntropyLoss()(logits, labels, weight, count),
            CrossEntropyLoss(use_sigmoid=True)(logits[:, :3], labels, weight, count),
            FocalLoss()(logits[:, :3], labels, weight, count),
            SmoothL1Loss(beta=1 / 9)(deltas, torch.zeros(20, 4), weight, count),
            hard_negative_cross_entropy(logits, labels, weight > 0, 3.0),
        ]
        sum(losses).backward()
    assert audit.counts() == {}, audit.where
    plain = CrossEntropyLoss()(logits, labels, weight, float(count))
    torch.testing.assert_close(losses[0], plain)
