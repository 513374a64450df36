"""A training batch at fixed shapes, in tensors a captured CUDA graph reads on each replay.

A CUDA graph replays the kernels of one captured step on the same memory: every batch it
serves must have the same shapes and reach the step through the same tensors, and nothing
that differs between batches may be a Python value baked into a kernel. A ``StaticBatch``
is a detector's batch made so:

- the images padded (zeros, bottom and right) to the size of their bucket;
- the ground truth of every image padded to the same count G (``gt_bucket``: the next power
  of two), with ``valid`` False for the padding, which the heads treat as absent;
- the image sizes (img_shape, pad_shape) also as a device Tensor, which the heads read
  instead of the host numbers where a size enters arithmetic (clipping, anchor flags).

The losses of a static batch are those of the batch it was made from, up to the random
draws of samplers whose candidates include the ground truth (their keys are drawn for G
padded gts): det-models' ``test_static_batch.py`` proves both, the same operators for
every batch of a bucket (``det_heads.op_trace``) and the same losses as the batch itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from det_heads.inputs import image_size, padded_size


class NotCapturableError(ValueError):
    """A model, batch or setting that a CUDA graph cannot capture; the message names the
    part and why."""


def gt_bucket(count: int, minimum: int = 8) -> int:
    """The ground-truth count a batch with at most ``count`` gts per image is padded to: the
    next power of two, at least ``minimum`` (a few graphs serve every batch)."""
    return max(minimum, 1 << max(count - 1, 0).bit_length())


@dataclass
class StaticBatch:
    """A batch at fixed shapes (see the module's docstring).

    Attributes:
        images: Tensor[B, 3, H, W] padded to the bucket's H x W.
        sizes: float32 Tensor[B, 4]: each image's (img h, img w, pad h, pad w), pixels.
        boxes: Tensor[B, G, 4] ground truth (x1, y1, x2, y2, input pixels), zeros at padding.
        labels: int64 Tensor[B, G], 0 at padding.
        valid: bool Tensor[B, G], False at padding.
        masks: uint8 Tensor[B, G, H, W] bitmaps, or None.
        host_metas: the batch's metas as given (image ids, flips, scale factors ...).
    """

    images: Tensor
    sizes: Tensor
    boxes: Tensor
    labels: Tensor
    valid: Tensor
    masks: Tensor | None
    host_metas: list[dict]

    @property
    def key(self) -> tuple:
        """What a captured graph is specific to: (B, H, W, G, with masks, dtype)."""
        b, _, h, w = self.images.shape
        return (b, h, w, self.boxes.shape[1], self.masks is not None, self.images.dtype)

    def metas(self) -> list[dict]:
        """The metas a detector takes, each with img_size and pad_size views of ``sizes``."""
        return [
            {**meta, "img_size": self.sizes[i, :2], "pad_size": self.sizes[i, 2:]}
            for i, meta in enumerate(self.host_metas)
        ]

    def targets(self) -> list[dict]:
        """The targets a detector takes: per image views of boxes, labels, valid[, masks]."""
        out = []
        for i in range(self.images.shape[0]):
            target = {"boxes": self.boxes[i], "labels": self.labels[i], "valid": self.valid[i]}
            if self.masks is not None:
                target["masks"] = self.masks[i]
            out.append(target)
        return out

    def copy_(self, other: StaticBatch) -> StaticBatch:
        """Copies other's tensors into this batch's (the same key), without waiting for the
        device; the host metas are other's."""
        if other.key != self.key:
            raise ValueError(f"StaticBatch.copy_: key {other.key} differs from {self.key}")
        for name in ("images", "sizes", "boxes", "labels", "valid", "masks"):
            mine = getattr(self, name)
            if mine is not None:
                mine.copy_(getattr(other, name), non_blocking=True)
        self.host_metas = list(other.host_metas)
        return self


def static_batch(
    images: Tensor,
    metas: Sequence[dict],
    targets: Sequence[dict],
    *,
    size: tuple[int, int] | None = None,
    num_gts: int | None = None,
    drop_ignore_boxes: bool = False,
) -> StaticBatch:
    """A detector's training batch made a StaticBatch on the images' device.

    Args:
        images: Tensor[B, 3, h, w], normalised and padded (det-data's collate).
        metas: per image dict(img_shape[, pad_shape], ...).
        targets: per image dict(boxes Tensor[N, 4], labels int64[N][, masks bitmaps
            Tensor[N, h, w]][, ignore_boxes]).
        size: (H, W) the images are padded to (their bucket), at least (h, w); None: (h, w).
        num_gts: G, at least the most gts of any image; None: gt_bucket of that.
        drop_ignore_boxes: leave out the targets' ignore_boxes (for a model whose assigners
            do not read them); False: a batch with any raises NotCapturableError.

    Raises:
        NotCapturableError: masks that are not bitmaps, crowd boxes, or proposals.
        ValueError: size smaller than the images, num_gts smaller than the ground truth.
    """
    b, _, h, w = images.shape
    device = images.device
    height, width = size if size is not None else (h, w)
    if height < h or width < w:
        raise ValueError(
            f"static_batch: size {(height, width)} is smaller than the images {(h, w)}"
        )
    most = max((t["boxes"].shape[0] for t in targets), default=0)
    g = gt_bucket(most) if num_gts is None else num_gts
    if g < most:
        raise ValueError(f"static_batch: num_gts={g} but an image has {most} ground truths")
    with_masks = any(t.get("masks") is not None for t in targets)
    for i, t in enumerate(targets):
        _check_capturable(i, t, with_masks, drop_ignore_boxes)
    padded = F.pad(images, (0, width - w, 0, height - h)) if (height, width) != (h, w) else images
    sizes = torch.tensor(
        [[*image_size(m), *padded_size(m)] for m in metas], dtype=torch.float32
    ).to(device, non_blocking=True)
    boxes = images.new_zeros(b, g, 4, dtype=torch.float32)
    labels = torch.zeros(b, g, dtype=torch.int64, device=device)
    valid = torch.zeros(b, g, dtype=torch.bool, device=device)
    masks = (
        torch.zeros(b, g, height, width, dtype=torch.uint8, device=device) if with_masks else None
    )
    for i, t in enumerate(targets):
        n = t["boxes"].shape[0]
        boxes[i, :n] = t["boxes"]
        labels[i, :n] = t["labels"]
        valid[i, :n] = True
        if masks is not None:
            m = t["masks"]
            masks[i, :n, : m.shape[-2], : m.shape[-1]] = m
    return StaticBatch(padded.contiguous(), sizes, boxes, labels, valid, masks, list(metas))


def _check_capturable(i: int, target: dict, with_masks: bool, drop_ignore_boxes: bool) -> None:
    masks = target.get("masks")
    if with_masks and not (isinstance(masks, Tensor) and masks.dim() == 3):
        kind = "missing" if masks is None else type(masks).__name__
        raise NotCapturableError(
            f"mask targets: targets[{i}]['masks'] is {kind}; a captured step needs bitmaps "
            "uint8 Tensor[N, H, W] (polygon and RLE masks are rasterised on the host per RoI; "
            "det_data.collate(..., bitmap_masks=True) rasterises them in the loader, as the "
            "train command does for a CUDA device)"
        )
    ignore = target.get("ignore_boxes")
    if ignore is not None and ignore.numel() and not drop_ignore_boxes:
        raise NotCapturableError(
            f"ignore_boxes: targets[{i}] has {ignore.shape[0]} crowd boxes and the model's "
            "assigners read them (ignore_iof_thr > 0); their per-image count is not padded"
        )
    if target.get("proposals") is not None:
        raise NotCapturableError(
            f"proposals: targets[{i}] carries precomputed proposals (Fast R-CNN), whose "
            "per-image count changes the step's shapes"
        )


__all__ = ["NotCapturableError", "StaticBatch", "gt_bucket", "static_batch"]
