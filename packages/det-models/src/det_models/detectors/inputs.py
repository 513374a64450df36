"""Checks of the batch a detector's forward receives (images, metas, targets)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def check_batch(
    name: str, images: Tensor, metas: Sequence[dict], targets: Sequence[dict] | None, training: bool
) -> None:
    """Raises ValueError unless images, metas (and targets in training) describe one batch.

    Args:
        name: the detector's name, for the message.
        images: Tensor[B, 3, H, W].
        metas: B dicts with img_shape (and scale_factor, ori_shape for eval).
        targets: B dicts with boxes and labels; required when training.
        training: whether the detector is in train mode.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name}: images must be a Tensor[B, 3, H, W], got {shape}")
    batch = images.shape[0]
    if len(metas) != batch:
        raise ValueError(f"{name}: expected {batch} metas (one per image), got {len(metas)}")
    if training:
        if targets is None:
            raise ValueError(
                f"{name}: targets are required in train mode (call .eval() to get detections)"
            )
        if len(targets) != batch:
            raise ValueError(
                f"{name}: expected {batch} targets (one per image), got {len(targets)}"
            )
