from __future__ import annotations

import torch
from torch import Tensor

from det_ops._arrays import TORCH
from det_ops.focal_loss import sigmoid_focal_loss_kernel


def _define(name: str, labels: bool):
    """The custom op for float targets or for class labels.

    It returns (loss, d loss / d inputs): the derivative is computed in the
    same pass when with_grad is set, and the backward only scales it.
    """

    @torch.library.custom_op(f"det_ops::{name}", mutates_args=())
    def op(
        inputs: Tensor, targets: Tensor, alpha: float, gamma: float, with_grad: bool
    ) -> tuple[Tensor, Tensor]:
        return sigmoid_focal_loss_kernel(
            TORCH, inputs.contiguous(), targets.contiguous(), labels, alpha, gamma, with_grad
        )

    @op.register_fake
    def _(inputs, targets, alpha, gamma, with_grad):
        return torch.empty_like(inputs), inputs.new_empty(inputs.shape if with_grad else (0,))

    def setup_context(ctx, inputs, output):
        ctx.with_grad = inputs[4]
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])

    def backward(ctx, grad_loss, _):
        if not ctx.with_grad:
            raise RuntimeError(f"det_ops::{name} was called with with_grad=False; pass True")
        (grad,) = ctx.saved_tensors
        return grad_loss * grad, None, None, None, None

    op.register_autograd(backward, setup_context=setup_context)
    return op


sigmoid_focal_loss = _define("sigmoid_focal_loss", labels=False)
sigmoid_focal_loss_labels = _define("sigmoid_focal_loss_labels", labels=True)
