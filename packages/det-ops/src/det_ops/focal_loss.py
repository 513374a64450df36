"""Sigmoid focal loss (RetinaNet) with float or class-index targets."""

from __future__ import annotations

from typing import Any

from det_ops import _checks
from det_ops._arrays import NUMPY, dtype_name, is_torch, kernels
from det_ops._fx import traced_call

REDUCTIONS = ("none", "mean", "sum")


def sigmoid_focal_loss(
    inputs: Any,
    targets: Any,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Any:
    """Focal loss of sigmoid logits (Lin et al., 2017).

    ``loss = alpha_t * (1 - p_t)**gamma * BCE(inputs, t)`` per element, as
    ``torchvision.ops.sigmoid_focal_loss`` defines it. One fused kernel computes it, not
    from torch's BCE: at gamma 0 (alpha < 0) it equals ``F.binary_cross_entropy_with_logits``
    only to a few ulps, either side.

    Args:
        inputs: Tensor[..., C] logits.
        targets: either float Tensor[..., C] in [0, 1] (the same shape as inputs),
            or integer class indices Tensor[...] in [0, C], where C means
            background (every class negative).
        alpha: weight of the positives in [0, 1]; a negative value disables it.
        gamma: focusing exponent (>= 0).
        reduction: "none" (per element, inputs' shape), "mean" or "sum".

    Returns:
        The loss, inputs' dtype. Differentiable with respect to inputs only.
    """
    traced = traced_call(sigmoid_focal_loss, (inputs, targets, alpha, gamma, reduction), {})
    if traced is not None:
        return traced
    op = "sigmoid_focal_loss"
    inputs = _checks.floating(op, "inputs", _checks.array(op, "inputs", inputs))
    targets = _checks.array(op, "targets", targets, like=inputs)
    _checks.same_device(op, inputs=inputs, targets=targets)
    _checks.on_cpu_or_cuda(op, inputs)
    alpha = _checks.real(op, "alpha", alpha, high=1.0)
    gamma = _checks.real(op, "gamma", gamma, low=0.0)
    if reduction not in REDUCTIONS:
        # "Invalid" starts torchvision's message too, which callers may match.
        raise ValueError(
            f"{op}: Invalid reduction {reduction!r}: reduction must be one of {REDUCTIONS}"
        )
    if inputs.ndim == 0:
        raise ValueError(f"{op}: inputs must have a class dimension [..., C], got a scalar")
    classes = inputs.shape[-1]
    labels = dtype_name(targets) in _checks.INT_DTYPES
    if labels:
        if tuple(targets.shape) != tuple(inputs.shape[:-1]):
            raise ValueError(
                f"{op}: integer targets must have shape {list(inputs.shape[:-1])} "
                f"(inputs' shape without the class dimension), got {list(targets.shape)}"
            )
        _check_label_range(op, targets, classes)
    else:
        _checks.floating(op, "targets", targets)
        if tuple(targets.shape) != tuple(inputs.shape):
            raise ValueError(
                f"{op}: float targets must have inputs' shape {list(inputs.shape)}, "
                f"got {list(targets.shape)}"
            )
    dtype = inputs.dtype
    compute = _checks.compute_dtype(inputs) if labels else _checks.compute_dtype(inputs, targets)
    logits = _checks.cast(inputs, compute)
    targets = _checks.cast(targets, "int64" if labels else compute)
    if is_torch(logits):
        import torch

        import det_ops._torch  # noqa: F401

        # The derivative comes out of the same pass, when autograd will want it.
        with_grad = inputs.requires_grad and torch.is_grad_enabled()
        focal = torch.ops.det_ops
        op_fn = focal.sigmoid_focal_loss_labels if labels else focal.sigmoid_focal_loss
        loss = op_fn(logits, targets, alpha, gamma, with_grad)[0].to(dtype)
    else:
        loss, _ = sigmoid_focal_loss_kernel(NUMPY, logits, targets, labels, alpha, gamma, False)
        loss = loss.astype(dtype, copy=False)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_label_range(op: str, labels: Any, classes: int) -> None:
    if _numel(labels) == 0 or not _checks.inspectable(labels):
        return  # unchecked labels outside [0, C) count as background
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > classes:
        raise ValueError(
            f"{op}: integer targets must be class indices in [0, {classes}] "
            f"({classes} = background), got values in [{low}, {high}]"
        )


def _numel(x: Any) -> int:
    return x.numel() if is_torch(x) else x.size


def _kernel_args(xp: Any, logits: Any, targets: Any, labels: bool) -> tuple[int, int, int, int]:
    classes = logits.shape[-1]
    rows = _numel(logits) // classes if classes else 0
    if labels:
        return rows, classes, 0, xp.ptr(targets)
    return rows, classes, xp.ptr(targets), 0


def sigmoid_focal_loss_kernel(
    xp: Any, logits: Any, targets: Any, labels: bool, alpha: float, gamma: float, with_grad: bool
) -> tuple[Any, Any]:
    """Returns (loss, d loss / d logits), both logits' shape; the latter empty unless with_grad."""
    rows, classes, target_ptr, label_ptr = _kernel_args(xp, logits, targets, labels)
    loss = xp.empty(tuple(logits.shape), dtype_name(logits), like=logits)
    grad = xp.empty(tuple(logits.shape) if with_grad else (0,), dtype_name(logits), like=logits)
    if rows * classes:
        kernels("sigmoid_focal_loss", logits).sigmoid_focal_loss(
            xp.code(logits),
            xp.ptr(logits),
            target_ptr,
            label_ptr,
            rows,
            classes,
            alpha,
            gamma,
            xp.ptr(loss),
            xp.ptr(grad) if with_grad else 0,
        )
    return loss, grad
