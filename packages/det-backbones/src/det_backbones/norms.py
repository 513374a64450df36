"""Normalisation layers of the backbones: frozen BN and the BN / SyncBN / GN choice."""

from __future__ import annotations

import torch
from torch import Tensor, nn

NORMS = ("FrozenBN", "BN", "SyncBN", "GN")
# Group Normalization paper's default, used by every GN row of the model zoo.
GN_GROUPS = 32


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms (buffers, never trained).

    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel.
    The buffers carry nn.BatchNorm2d's names, so BN state dicts load into it.

    Args:
        num_features: channels C.
        eps: added to the variance.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):
        # BatchNorm2d checkpoints carry a step counter that a frozen layer has no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )

    def scale_and_shift(self) -> tuple[Tensor, Tensor]:
        """The per-channel affine map this layer computes: y = x * scale + shift.

        Returns:
            scale Tensor[C], shift Tensor[C].
        """
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: Tensor) -> Tensor:
        """x Tensor[B, C, H, W] -> Tensor[B, C, H, W] (keeps x's memory format)."""
        scale, shift = self.scale_and_shift()
        # One pass over x instead of a multiply and an add.
        return torch.addcmul(
            shift.view(1, -1, 1, 1).to(x.dtype), x, scale.view(1, -1, 1, 1).to(x.dtype)
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def conv_norm(conv: nn.Module, norm: nn.Module, x: Tensor) -> Tensor:
    """norm(conv(x)), in one convolution when norm is a FrozenBatchNorm2d after an nn.Conv2d.

    The frozen affine map is folded into the conv's weight and bias on the fly (a
    weight-sized product per call), so the activation map is not read and written again
    forward, nor backward. Values equal norm(conv(x)) up to float rounding; gradients reach
    the conv's weight through the product.

    Args:
        conv: the convolution (deformable convs and others are called as they are).
        norm: the norm layer after it (any module).
        x: the conv's input Tensor[B, C_in, H, W].
    """
    if isinstance(norm, FrozenBatchNorm2d) and type(conv) is nn.Conv2d:
        scale, shift = norm.scale_and_shift()
        weight = conv.weight * scale.to(conv.weight.dtype).view(-1, 1, 1, 1)
        bias = shift if conv.bias is None else torch.addcmul(shift, conv.bias, scale)
        return conv._conv_forward(x, weight, bias.to(weight.dtype))
    return norm(conv(x))


def make_norm(norm: str, channels: int) -> nn.Module:
    """The normalisation layer named by `norm` for `channels` channels.

    Args:
        norm: "FrozenBN" (FrozenBatchNorm2d), "BN" (nn.BatchNorm2d), "SyncBN"
            (nn.SyncBatchNorm, needs an initialised process group when training) or "GN"
            (nn.GroupNorm with 32 groups).
        channels: C.
    """
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "GN":
        return nn.GroupNorm(GN_GROUPS, channels)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")


def is_batch_norm(module: nn.Module) -> bool:
    """Whether module is a batch norm with running statistics (BN or SyncBN)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)
