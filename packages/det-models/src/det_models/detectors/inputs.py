"""Checks of the batch a detector's forward receives (images, metas, targets, proposals).

A detector checks its batch here, once, and calls its heads with ``check_inputs=False``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from det_heads.inputs import check_metas, check_targets


def check_batch(
    name: str,
    images: Tensor,
    metas: Sequence[dict],
    targets: Sequence[dict] | None,
    training: bool,
    num_classes: int | None = None,
) -> None:
    """Raises ValueError unless images, metas (and targets in training) describe one batch.

    The targets' boxes and labels of all images are checked together, with one host
    synchronisation for the batch (det_heads.inputs.check_targets).

    Args:
        name: the detector's name, for the message.
        images: Tensor[B, 3, H, W].
        metas: B dicts with img_shape (and scale_factor, ori_shape for eval).
        targets: B dicts with boxes float[G, 4] (x1, y1, x2, y2) and labels int64[G]
            (optionally ignore_boxes, masks); required when training.
        training: whether the detector is in train mode.
        num_classes: C, for labels in 0..C-1; None for the RPN (every box is an object).
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name}: images must be a Tensor[B, 3, H, W], got {shape}")
    batch = images.shape[0]
    check_metas(name, metas, batch)
    if training:
        if targets is None:
            raise ValueError(
                f"{name}: targets are required in train mode (call .eval() to get detections)"
            )
        check_targets(name, targets, batch, num_classes)
