from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.focal_loss import sigmoid_focal_loss_backward_kernel, sigmoid_focal_loss_kernel


def _define(name: str, labels: bool):
    """The forward and backward custom ops for float targets or class labels."""

    @torch.library.custom_op(f"det_ops::{name}", mutates_args=())
    def forward(inputs: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
        return sigmoid_focal_loss_kernel(
            TORCH, inputs.contiguous(), targets.contiguous(), labels, alpha, gamma
        )

    @forward.register_fake
    def _(inputs, targets, alpha, gamma):
        return torch.empty_like(inputs)

    @torch.library.custom_op(f"det_ops::{name}_backward", mutates_args=())
    def backward_op(
        grad_loss: Tensor, inputs: Tensor, targets: Tensor, alpha: float, gamma: float
    ) -> Tensor:
        return sigmoid_focal_loss_backward_kernel(
            TORCH, grad_loss.contiguous(), inputs.contiguous(), targets.contiguous(), labels,
            alpha, gamma,
        )

    @backward_op.register_fake
    def _(grad_loss, inputs, targets, alpha, gamma):
        return torch.empty_like(inputs)

    def setup_context(ctx, inputs, output):
        logits, targets, alpha, gamma = inputs
        ctx.save_for_backward(logits, targets)
        ctx.alpha, ctx.gamma = alpha, gamma

    def backward(ctx, grad_loss):
        logits, targets = ctx.saved_tensors
        grad = backward_op(grad_loss, logits, targets, ctx.alpha, ctx.gamma)
        return grad, None, None, None

    forward.register_autograd(backward, setup_context=setup_context)
    return forward, backward_op


sigmoid_focal_loss, sigmoid_focal_loss_backward = _define("sigmoid_focal_loss", labels=False)
sigmoid_focal_loss_labels, sigmoid_focal_loss_labels_backward = _define(
    "sigmoid_focal_loss_labels", labels=True
)
