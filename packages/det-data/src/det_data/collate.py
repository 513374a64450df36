"""Batching samples into the padded tensors and lists of docs/design.md's data contract."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from det_data.masks import InstanceMasks


def collate(
    samples: Sequence[tuple[Tensor, dict[str, Any], dict[str, Any]]],
    size_divisor: int = 32,
    masks_for_heads: bool = True,
    bitmap_masks: bool = False,
) -> tuple[Tensor, list[dict[str, Any]], list[dict[str, Any]]]:
    """Stacks (image, meta, target) samples into one batch.

    Args:
        samples: images Tensor[3, H_i, W_i] (float, or uint8 for batches normalised later)
            with their meta and target dicts.
        size_divisor: the batch's height and width are rounded up to a multiple of this.
        masks_for_heads: turn InstanceMasks into what det-heads takes (polygon lists when
            every mask is a polygon, else uint8 Tensor[N, H_i, W_i]); else leave them.
        bitmap_masks: with masks_for_heads, rasterise polygons too: every image's masks
            as uint8 Tensor[N, H_i, W_i], which det-heads cuts mask targets from on the
            device with no host read (for training on a GPU; loader workers do the drawing).

    Returns:
        images Tensor[B, 3, H, W] of the samples' dtype, zero-padded at the bottom and
        right, the metas
        list (pad_shape set to each image's size rounded up to size_divisor) and the
        targets list (boxes x1, y1, x2, y2 in input pixels, unchanged by
        the padding).
    """
    if not samples:
        raise ValueError("collate: samples is empty")
    images = [s[0] for s in samples]
    h = math.ceil(max(im.shape[-2] for im in images) / size_divisor) * size_divisor
    w = math.ceil(max(im.shape[-1] for im in images) / size_divisor) * size_divisor
    batch = images[0].new_zeros(len(images), images[0].shape[0], h, w)
    for i, im in enumerate(images):
        batch[i, :, : im.shape[-2], : im.shape[-1]].copy_(im)
    # Each image's own padded size, as the Pad transform would record it.
    metas = [
        {
            **meta,
            "pad_shape": (
                math.ceil(im.shape[-2] / size_divisor) * size_divisor,
                math.ceil(im.shape[-1] / size_divisor) * size_divisor,
                3,
            ),
        }
        for im, (_, meta, _) in zip(images, samples, strict=True)
    ]
    targets = []
    for _, _, target in samples:
        masks = target.get("masks")
        if masks_for_heads and isinstance(masks, InstanceMasks):
            target = {**target, "masks": masks.to_tensor() if bitmap_masks else masks.for_heads()}
        targets.append(target)
    return batch, metas, targets
