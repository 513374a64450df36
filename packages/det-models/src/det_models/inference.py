"""Preparing a detector for fast inference without changing what it computes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from det_backbones import fuse


def prepare_for_inference(model: nn.Module, *, channels_last: bool = True) -> nn.Module:
    """Makes a detector faster at inference; its detections stay the same up to float rounding.

    1. Frozen (and eval-mode) batch norms of the backbone are folded into the convs before
       them (det_backbones.fuse): one pass over each activation less, and no norm at all.
    2. The weights are moved to channels_last, so every conv of the backbone, the neck and
       the heads runs on NHWC activations, the layout oneDNN (CPU) and cuDNN prefer.

    In place; the model is put in eval mode and is for inference only afterwards: its
    backbone has lost its norm layers, so its state dict no longer loads into a freshly built
    model (load weights first, then prepare). GroupNorm and trainable BN in train mode are
    left as they are (fuse refuses BN in train mode; eval mode is set first).

    Args:
        model: a detector of det_models.detectors (anything with a `backbone` attribute, or a
            backbone itself).
        channels_last: also move the weights to channels_last.

    Returns:
        model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    model.eval()
    fuse(getattr(model, "backbone", model))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def is_channels_last(model: nn.Module) -> bool:
    """Whether the model's first 4-d weight is stored channels_last."""
    for param in model.parameters():
        if param.dim() == 4:
            return param.is_contiguous(memory_format=torch.channels_last)
    return False


def to_model_layout(images: Tensor, model: nn.Module) -> Tensor:
    """images Tensor[B, 3, H, W] in the memory format of the model's conv weights."""
    if is_channels_last(model):
        return images.contiguous(memory_format=torch.channels_last)
    return images
