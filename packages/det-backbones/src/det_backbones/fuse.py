"""Folding frozen batch norm into the preceding convolution for inference."""

from __future__ import annotations

import torch
from torch import nn

from det_backbones.norms import FrozenBatchNorm2d, is_batch_norm

# (conv, norm) attribute pairs of the stem and the residual blocks.
_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def fuse(model: nn.Module) -> nn.Module:
    """Folds every FrozenBatchNorm2d, and every BN / SyncBN in eval mode, into the conv
    before it, and replaces the norm with nn.Identity. In place; returns the model.

    For inference only: a fused model computes the same outputs in eval mode, but its BN
    layers are gone, so training it would no longer freeze or normalise anything. GroupNorm
    depends on the input and is left as it is. Deformable convs fold like plain ones.

    Args:
        model: a ResNet (or any module using its conv/bn naming); VGG16SSD has no norm and
            is returned unchanged.

    Returns:
        model.
    """
    for module in list(model.modules()):
        for conv_name, norm_name in _PAIRS:
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if _foldable(conv, norm):
                _fold(conv, norm)
                setattr(module, norm_name, nn.Identity())
        if isinstance(module, nn.Sequential) and len(module) == 2 and _foldable(*module):
            _fold(module[0], module[1])
            module[1] = nn.Identity()
    return model


def _foldable(conv: nn.Module | None, norm: nn.Module | None) -> bool:
    if not isinstance(conv, nn.Module) or not hasattr(conv, "weight"):
        return False
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    if is_batch_norm(norm):
        if norm.training:
            raise ValueError(
                f"fuse: {type(norm).__name__} is in train mode and would keep changing; "
                f"call model.eval() (or build with norm_eval=True) before fuse(model)"
            )
        return True
    return False


def _fold(conv: nn.Module, norm: nn.Module) -> None:
    """conv's weight and bias become those of norm(conv(x))."""
    with torch.no_grad():
        if isinstance(norm, FrozenBatchNorm2d):
            scale, shift = norm.scale_and_shift()
        else:
            scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
            shift = norm.bias - norm.running_mean * scale
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        new_bias = nn.Parameter(bias.to(conv.weight.dtype), conv.weight.requires_grad)
    if "bias" not in conv._parameters:
        # A layer that stored `bias = None` as a plain attribute (det_ops' DeformConv2d).
        delattr(conv, "bias")
    conv.bias = new_bias
