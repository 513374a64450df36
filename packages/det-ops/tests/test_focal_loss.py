import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

import det_ops
from det_ops.reference import focal_loss as reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "alpha, gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.25, 1.0), (0.75, 0.5)]
)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_loss_matches_torchvision(dtype, alpha, gamma, reduction):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(64, 20, generator=g, dtype=dtype) * 4).requires_grad_()
    targets = torch.rand(64, 20, generator=g, dtype=dtype)
    targets[:32] = (targets[:32] > 0.8).to(dtype)  # half hard, half soft targets
    ours = det_ops.sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
    theirs = torchvision.ops.sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    (our_grad,) = torch.autograd.grad(ours.sum(), logits)
    (their_grad,) = torch.autograd.grad(theirs.sum(), logits)
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-5, atol=1e-6)


def test_focal_loss_class_indices_equal_one_hot():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(50, 6, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (50,), generator=g)  # 6 = background
    one_hot = F.one_hot(labels, 7)[:, :6].to(torch.float64)
    ours = det_ops.sigmoid_focal_loss(logits, labels)
    torch.testing.assert_close(ours, det_ops.sigmoid_focal_loss(logits, one_hot))
    torch.testing.assert_close(ours, reference.sigmoid_focal_loss(logits, labels))
    assert torch.autograd.gradcheck(
        lambda t: det_ops.sigmoid_focal_loss(t, labels, 0.25, 2.0), (logits,)
    )
    assert torch.autograd.gradcheck(
        lambda t: det_ops.sigmoid_focal_loss(t, one_hot, 0.25, 1.5), (logits,)
    )


def test_focal_loss_hand_computed():
    logits = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    loss = det_ops.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    # logit 0, positive: p = 0.5, loss = 0.25 * 0.5^2 * ln 2
    # logit 2, negative: p = sigmoid(2), loss = 0.75 * p^2 * ln(1 + e^2)
    p = 1 / (1 + np.exp(-2.0))
    expected = [[0.25 * 0.25 * np.log(2), 0.75 * p**2 * np.log1p(np.exp(2.0))]]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))


def test_focal_loss_extreme_logits_stay_finite():
    logits = torch.tensor([[-200.0, 200.0, 0.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    loss = det_ops.sigmoid_focal_loss(logits, targets, gamma=0.5)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(loss[0, :2], torch.tensor([50.0, 150.0]))  # 0.25 * 200, 0.75 * 200


def test_focal_loss_numpy_matches_torch():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(10, 4, 3, generator=g)
    targets = torch.rand(10, 4, 3, generator=g)
    np.testing.assert_allclose(
        det_ops.sigmoid_focal_loss(logits.numpy(), targets.numpy(), reduction="sum"),
        det_ops.sigmoid_focal_loss(logits, targets, reduction="sum").item(),
        rtol=1e-5,
    )
    labels = torch.randint(0, 4, (10, 4))
    np.testing.assert_array_equal(
        det_ops.sigmoid_focal_loss(logits.numpy(), labels.numpy()),
        det_ops.sigmoid_focal_loss(logits, labels).numpy(),
    )


def test_focal_loss_empty_and_half():
    assert det_ops.sigmoid_focal_loss(
        torch.zeros(0, 80), torch.zeros(0, dtype=torch.int64)
    ).shape == (0, 80)
    logits, targets = torch.randn(8, 5), torch.rand(8, 5)
    out = det_ops.sigmoid_focal_loss(logits.bfloat16(), targets.bfloat16())
    assert out.dtype == torch.bfloat16
    expected = det_ops.sigmoid_focal_loss(logits.bfloat16().float(), targets.bfloat16().float())
    torch.testing.assert_close(out, expected.bfloat16())


@pytest.mark.parametrize(
    "targets, kwargs, error, message",
    [
        (torch.zeros(4, 3), {"reduction": "avg"}, ValueError, "reduction must be one of"),
        (torch.zeros(4, 2), {}, ValueError, r"float targets must have inputs' shape \[4, 3\]"),
        (
            torch.zeros(4, 3, dtype=torch.int64),
            {},
            ValueError,
            r"integer targets must have shape \[4\]",
        ),
        (torch.tensor([0, 1, 2, 4]), {}, ValueError, r"class indices in \[0, 3\]"),
        (torch.tensor([0, 1, 2, -1]), {}, ValueError, r"got values in \[-1, 2\]"),
        (torch.zeros(4, 3), {"gamma": -1.0}, ValueError, "gamma must be >= 0"),
        (torch.zeros(4, 3), {"alpha": 1.5}, ValueError, "alpha must be <= 1"),
        (torch.zeros(4, 3, dtype=torch.bool), {}, TypeError, "targets must have a floating dtype"),
    ],
)
def test_focal_loss_rejects_bad_inputs(targets, kwargs, error, message):
    with pytest.raises(error, match=message):
        det_ops.sigmoid_focal_loss(torch.zeros(4, 3), targets, **kwargs)
