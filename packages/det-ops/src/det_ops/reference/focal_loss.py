"""Reference sigmoid focal loss in plain torch (differentiable by autograd)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    """alpha_t * (1 - p_t)**gamma * BCE; integer targets are class indices, C = background."""
    if not targets.is_floating_point():
        classes = inputs.shape[-1]
        targets = F.one_hot(targets, classes + 1)[..., :classes].to(inputs.dtype)
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
