"""Classification and box-regression losses of the zoo's heads.

Every loss takes optional per-sample weights and an avg_factor: the sum of the weighted
element losses is divided by avg_factor (by the number of elements when it is None), then
multiplied by the loss weight. Class labels are 0..C-1 with C meaning background.

An avg_factor counted from the targets (positives, sampled boxes) stays a tensor on the
device: reading it as a Python number would make the host wait for the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from det_heads import kernels

AvgFactor = float | Tensor | None


def _reduce(loss: Tensor, weight: Tensor | None, avg_factor: AvgFactor) -> Tensor:
    if weight is not None:
        loss = loss * (weight if weight.dim() == loss.dim() else weight[:, None])
    total = loss.sum()
    if avg_factor is None:
        return total / max(loss.numel(), 1)
    return total / avg_factor


def cross_entropy(
    logits: Tensor, labels: Tensor, weight: Tensor | None = None, avg_factor: AvgFactor = None
) -> Tensor:
    """Softmax cross entropy.

    Args:
        logits: Tensor[N, C + 1] (the last column is background).
        labels: int64 Tensor[N] in 0..C.
        weight: Tensor[N] per-sample weights, or None.
        avg_factor: divisor of the weighted sum; None: N.

    Returns:
        Scalar Tensor.
    """
    return _reduce(F.cross_entropy(logits, labels, reduction="none"), weight, avg_factor)


def one_hot_without_background(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """Tensor[N, C] one-hot of labels in 0..C; label C (background) is all zeros."""
    targets = torch.zeros(labels.shape[0], num_classes + 1, dtype=dtype, device=labels.device)
    targets.scatter_(1, labels[:, None], 1.0)
    return targets[:, :num_classes]


def binary_cross_entropy(
    logits: Tensor, labels: Tensor, weight: Tensor | None = None, avg_factor: AvgFactor = None
) -> Tensor:
    """Sigmoid cross entropy, one binary problem per class.

    Args:
        logits: Tensor[N, C].
        labels: int64 Tensor[N] in 0..C (C: every class negative).
        weight: Tensor[N] per-sample weights, or None.
        avg_factor: divisor of the weighted sum; None: N * C.

    Returns:
        Scalar Tensor.
    """
    targets = one_hot_without_background(labels, logits.shape[1], logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return _reduce(loss, weight, avg_factor)


def smooth_l1(
    pred: Tensor,
    target: Tensor,
    beta: float = 1.0,
    weight: Tensor | None = None,
    avg_factor: AvgFactor = None,
) -> Tensor:
    """Smooth L1: 0.5 x^2 / beta where |x| < beta, else |x| - 0.5 beta (L1 when beta = 0).

    Args:
        pred, target: Tensor[N, 4].
        beta: the quadratic zone's half width.
        weight: Tensor[N, 4] or Tensor[N], or None.
        avg_factor: divisor of the weighted sum; None: N * 4.

    Returns:
        Scalar Tensor.
    """
    diff = (pred - target).abs()
    if beta > 0:
        loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    else:
        loss = diff
    return _reduce(loss, weight, avg_factor)


def focal_loss(
    logits: Tensor,
    labels: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: Tensor | None = None,
    avg_factor: AvgFactor = None,
) -> Tensor:
    """Sigmoid focal loss (det_ops.sigmoid_focal_loss, unchecked) summed over classes.

    Args:
        logits: Tensor[N, C].
        labels: int64 Tensor[N] in 0..C (C: background).
        gamma, alpha: focusing exponent and positive weight.
        weight: Tensor[N] per-sample weights, or None.
        avg_factor: divisor of the weighted sum; None: N * C.

    Returns:
        Scalar Tensor.
    """
    loss = kernels.sigmoid_focal_loss(logits, labels, alpha, gamma)
    return _reduce(loss, weight, avg_factor)


def hard_negative_cross_entropy(
    logits: Tensor, labels: Tensor, valid: Tensor, neg_pos_ratio: float = 3.0
) -> Tensor:
    """SSD's classification loss of one image: every positive and the hardest negatives.

    The negatives are the neg_pos_ratio * P valid background anchors of largest cross
    entropy (P = number of positives), as in the SSD paper (3:1).

    Args:
        logits: Tensor[N, C + 1].
        labels: int64 Tensor[N] in 0..C (C: background).
        valid: bool Tensor[N], anchors that may be trained on.
        neg_pos_ratio: negatives per positive.

    Returns:
        Scalar Tensor: the summed (not averaged) loss of the chosen anchors.
    """
    background = logits.shape[1] - 1
    loss = F.cross_entropy(logits, labels, reduction="none")
    pos = valid & (labels < background)
    neg = valid & (labels == background)
    # The count of negatives stays on the device: the hardest are the first num_neg of the
    # negatives' losses sorted in decreasing order.
    num_neg = torch.minimum((pos.sum().double() * neg_pos_ratio).floor().long(), neg.sum())
    ranked = loss.masked_fill(~neg, float("-inf")).sort(descending=True).values
    rank = torch.arange(loss.shape[0], device=loss.device)
    hardest = torch.where(rank < num_neg, ranked, 0.0)
    return torch.where(pos, loss, 0.0).sum() + hardest.sum()


class CrossEntropyLoss:
    """Softmax (labels 0..C over C + 1 logits) or sigmoid (C logits) cross entropy.

    Args:
        use_sigmoid: one binary problem per class instead of a softmax.
        loss_weight: multiplier of the loss.
    """

    def __init__(self, use_sigmoid: bool = False, loss_weight: float = 1.0) -> None:
        self.use_sigmoid = use_sigmoid
        self.loss_weight = loss_weight

    def __call__(
        self,
        logits: Tensor,
        labels: Tensor,
        weight: Tensor | None = None,
        avg_factor: AvgFactor = None,
    ) -> Tensor:
        fn = binary_cross_entropy if self.use_sigmoid else cross_entropy
        return self.loss_weight * fn(logits, labels, weight, avg_factor)


class FocalLoss:
    """Sigmoid focal loss; 2019 RetinaNet: gamma 2, alpha 0.25, weight 1."""

    use_sigmoid = True

    def __init__(self, gamma: float = 2.0, alpha: float = 0.25, loss_weight: float = 1.0) -> None:
        self.gamma = gamma
        self.alpha = alpha
        self.loss_weight = loss_weight

    def __call__(
        self,
        logits: Tensor,
        labels: Tensor,
        weight: Tensor | None = None,
        avg_factor: AvgFactor = None,
    ) -> Tensor:
        return self.loss_weight * focal_loss(
            logits, labels, self.gamma, self.alpha, weight, avg_factor
        )


class SmoothL1Loss:
    """Smooth L1 box loss; 2019: beta 1/9 for RPN, 0.11 for RetinaNet, 1 for R-CNN and SSD."""

    def __init__(self, beta: float = 1.0, loss_weight: float = 1.0) -> None:
        self.beta = beta
        self.loss_weight = loss_weight

    def __call__(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: AvgFactor = None,
    ) -> Tensor:
        return self.loss_weight * smooth_l1(pred, target, self.beta, weight, avg_factor)
