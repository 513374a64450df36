"""Checks and readers for the targets, metas and feature lists that cross into the heads.

The data contract is in docs/design.md: targets are dicts of boxes float[N, 4]
(x1, y1, x2, y2, input pixels) and labels int64[N] in 0..C-1, optionally ignore_boxes
float[M, 4], masks and valid bool[N] (False: a padding box that the heads treat as absent);
metas are dicts with img_shape (h, w[, c]) and scale_factor, optionally img_size and
pad_size Tensor[2] (h, w) on the device, which the heads read instead of img_shape and
pad_shape where the sizes enter arithmetic (a step captured as a CUDA graph).

Targets, metas and proposals are checked once per batch, at the public boundary: by a
det-models detector's forward, or by a head's loss / predict when it is called directly (a
detector passes ``check_inputs=False`` to its heads). The values of a batch are checked with
one reduction and one host synchronisation, not one per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from det_heads.tracing import is_exporting


def check_features(op: str, feats: Sequence[Tensor], num_levels: int) -> None:
    """Raises ValueError unless feats is a list of num_levels Tensor[B, C, H, W]."""
    if not isinstance(feats, (list, tuple)):
        raise ValueError(f"{op}: feats must be a list of Tensor[B, C, H, W], got {type(feats)}")
    if len(feats) != num_levels:
        raise ValueError(f"{op}: expected {num_levels} feature levels, got {len(feats)}")
    for i, f in enumerate(feats):
        if not isinstance(f, Tensor) or f.dim() != 4:
            raise ValueError(f"{op}: feats[{i}] must be a Tensor[B, C, H, W]")


def check_boxes(op: str, name: str, boxes: Any, offset: int = 0) -> None:
    """Raises ValueError unless boxes is a float Tensor[N, 4] with x2 >= x1 and y2 >= y1.

    With offset 1 (the 2019 widths x2 - x1 + 1) a box may end up to one pixel before it
    starts (width x2 - x1 + 1 >= 0): the 2019 box decoding gives such boxes when a predicted
    size is under one pixel, and the 2019 code kept them.
    """
    _check_box_sets(op, [(name, boxes)], offset)


def _check_box_sets(op: str, named_boxes: Sequence[tuple[str, Any]], offset: int = 0) -> None:
    """check_boxes of several box tensors (one per image), named for the message.

    Their values are checked together: one reduction over the concatenated boxes, one host
    synchronisation for the batch.
    """
    for name, boxes in named_boxes:
        _check_box_type(op, name, boxes)
    if is_exporting():
        return  # an exported graph has sizes but no values to check
    if named_boxes and bool(_bad_boxes(torch.cat([b for _, b in named_boxes]), offset).any()):
        for name, boxes in named_boxes:
            _raise_on_bad_boxes(op, name, boxes, offset)


def check_targets(
    op: str, targets: Sequence[dict], batch_size: int, num_classes: int | None = None
) -> None:
    """Raises ValueError unless targets has one well-formed dict per image.

    Types and shapes are checked image by image on the host; the values (box corners, label
    range) of the whole batch with one reduction. On the CPU that reduction is read at once
    and only a batch with a bad value is searched image by image, for the message. On an
    accelerator reading it would make the step wait for the device: there it is an
    asynchronous device assertion instead (a bad batch stops the run with the message
    below, at the device's next synchronisation); ``python -m det_engine.data check``
    reports every bad annotation of a dataset before training.
    """
    if len(targets) != batch_size:
        raise ValueError(f"{op}: expected {batch_size} targets (one per image), got {len(targets)}")
    boxes, labels = [], []
    for i, t in enumerate(targets):
        if "boxes" not in t or "labels" not in t:
            raise ValueError(f"{op}: targets[{i}] must have 'boxes' and 'labels'")
        _check_box_type(op, f"targets[{i}]['boxes']", t["boxes"])
        if not isinstance(t["labels"], Tensor) or t["labels"].dim() != 1:
            raise ValueError(f"{op}: targets[{i}]['labels'] must be an int64 Tensor[N]")
        if t["labels"].shape[0] != t["boxes"].shape[0]:
            raise ValueError(
                f"{op}: targets[{i}] has {t['boxes'].shape[0]} boxes but "
                f"{t['labels'].shape[0]} labels; they must have the same length"
            )
        valid = t.get("valid")
        if valid is not None and (
            not isinstance(valid, Tensor)
            or valid.dtype != torch.bool
            or valid.dim() != 1
            or valid.shape[0] != t["boxes"].shape[0]
        ):
            raise ValueError(
                f"{op}: targets[{i}]['valid'] must be a bool Tensor[{t['boxes'].shape[0]}] "
                "(one flag per box: False for padding)"
            )
        boxes.append(t["boxes"])
        labels.append(t["labels"])
        if t.get("ignore_boxes") is not None:
            _check_box_type(op, f"targets[{i}]['ignore_boxes']", t["ignore_boxes"])
            boxes.append(t["ignore_boxes"])
    if not targets:
        return
    bad = _bad_boxes(torch.cat(boxes), 0).any()
    if num_classes is not None:
        all_labels = torch.cat(labels)
        bad = bad | ((all_labels < 0) | (all_labels >= num_classes)).any()
    if bad.device.type != "cpu":
        torch._assert_async(
            ~bad,
            f"{op}: a target has a box that ends before it starts or a label outside "
            f"0..{num_classes - 1 if num_classes else 'C-1'}",
        )
        return
    if not bool(bad):
        return
    for i, t in enumerate(targets):
        _raise_on_bad_boxes(op, f"targets[{i}]['boxes']", t["boxes"], 0)
        if num_classes is not None and t["labels"].numel():
            low, high = int(t["labels"].min()), int(t["labels"].max())
            if low < 0 or high >= num_classes:
                raise ValueError(
                    f"{op}: targets[{i}]['labels'] must be in 0..{num_classes - 1}, "
                    f"got values in [{low}, {high}]"
                )
        if t.get("ignore_boxes") is not None:
            _raise_on_bad_boxes(op, f"targets[{i}]['ignore_boxes']", t["ignore_boxes"], 0)


def check_proposals(
    op: str, proposals: Sequence[dict | Tensor], batch_size: int, offset: int = 0
) -> None:
    """Raises ValueError unless proposals has, per image, a Tensor[K, 4] (or Tensor[K, 5]
    with scores, or a dict with such boxes) of valid boxes under the box width offset."""
    if len(proposals) != batch_size:
        raise ValueError(
            f"{op}: expected {batch_size} proposal sets (one per image), got {len(proposals)}"
        )
    named = []
    for i, p in enumerate(proposals):
        boxes = p["boxes"] if isinstance(p, dict) else p
        if isinstance(boxes, Tensor) and boxes.dim() == 2:
            boxes = boxes[:, :4]
        named.append((f"proposals[{i}]", boxes))
    _check_box_sets(op, named, offset)


def _check_box_type(op: str, name: str, boxes: Any) -> None:
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = list(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{op}: {name} must be a Tensor[N, 4] (x1, y1, x2, y2), got {shape}")
    if not boxes.is_floating_point():
        raise ValueError(f"{op}: {name} must be floating point, got {boxes.dtype}")


def _bad_boxes(boxes: Tensor, offset: int) -> Tensor:
    """bool Tensor[N]: the boxes that end before they start (by more than offset)."""
    return (boxes[:, 2] + offset < boxes[:, 0]) | (boxes[:, 3] + offset < boxes[:, 1])


def _raise_on_bad_boxes(op: str, name: str, boxes: Tensor, offset: int) -> None:
    bad = _bad_boxes(boxes, offset)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        rule = "x2 < x1 or y2 < y1" if offset == 0 else f"x2 + {offset} < x1 or y2 + {offset} < y1"
        raise ValueError(
            f"{op}: {name}[{i}] = {boxes[i].tolist()} has {rule}; boxes must be (x1, y1, x2, y2)"
        )


def check_metas(op: str, metas: Sequence[dict], batch_size: int) -> None:
    """Raises ValueError unless metas has one dict with img_shape per image."""
    if len(metas) != batch_size:
        raise ValueError(f"{op}: expected {batch_size} metas (one per image), got {len(metas)}")
    for i, m in enumerate(metas):
        if "img_shape" not in m:
            raise ValueError(f"{op}: metas[{i}] must have 'img_shape' (h, w[, c])")


def image_size(meta: dict) -> tuple[int, int]:
    """(height, width) of the resized, unpadded image in input pixels."""
    shape = meta["img_shape"]
    return _size(shape[0]), _size(shape[1])


def image_bounds(meta: dict) -> tuple[int, int] | tuple[Tensor, Tensor]:
    """(height, width) of the resized, unpadded image, for clipping boxes to it: the scalar
    Tensors of meta["img_size"] (Tensor[2], h, w, on the device) when the meta has them,
    else image_size's numbers.

    A step captured as a CUDA graph for every batch of a size bucket reads the image sizes
    from device memory (det_models.static_batch); numbers would be baked into its kernels.
    """
    size = meta.get("img_size")
    if isinstance(size, Tensor):
        return size[0], size[1]
    return image_size(meta)


def padded_size(meta: dict) -> tuple[int, int] | Tensor:
    """(height, width) of the image padded to the size divisor (pad_shape, else img_shape),
    or the Tensor[2] meta["pad_size"] when the meta has it (see image_bounds)."""
    size = meta.get("pad_size")
    if isinstance(size, Tensor):
        return size
    shape = meta.get("pad_shape", meta["img_shape"])
    return _size(shape[0]), _size(shape[1])


def gt_valid(target: dict, device: torch.device | None = None) -> Tensor | None:
    """bool Tensor[G]: the real ground truths of a target padded to a fixed count (its
    "valid"), or None when every box is real."""
    valid = target.get("valid")
    return None if valid is None else valid.to(device)


def _size(value: Any) -> int:
    """int(value), except for a symbolic size (torch.export of a graph for any image size),
    which int() would fix to the example's value."""
    return value if isinstance(value, torch.SymInt) else int(value)


def scale_factors(meta: dict, device: torch.device | None = None) -> Tensor:
    """Tensor[4] (w, h, w, h) that maps original-image pixels to input pixels.

    scale_factor may be a number, a (w, h) pair or a (w, h, w, h) quadruple; missing
    means 1.
    """
    factor = meta.get("scale_factor", 1.0)
    values = torch.as_tensor(factor, dtype=torch.float32, device=device).flatten()
    if values.numel() == 1:
        values = values.repeat(4)
    elif values.numel() == 2:
        values = values.repeat(2)
    elif values.numel() != 4:
        raise ValueError(f"scale_factor must be a number, (w, h) or (w, h, w, h), got {factor}")
    return values


def original_size(meta: dict) -> tuple[int, int]:
    """(height, width) of the original image; computed from img_shape when ori_shape is absent."""
    if "ori_shape" in meta:
        return _size(meta["ori_shape"][0]), _size(meta["ori_shape"][1])
    h, w = image_size(meta)
    s = scale_factors(meta)
    return round(h / float(s[1])), round(w / float(s[0]))


def to_original(boxes: Tensor, meta: dict) -> Tensor:
    """Boxes Tensor[N, 4] in input pixels -> original-image pixels, clipped to that image.

    Dividing by the scale factor can overshoot the border by a rounding error (a box at
    the input's right edge maps to ``w + 1e-5``); clipping keeps every box inside.
    """
    h, w = original_size(meta)
    boxes = boxes / scale_factors(meta, boxes.device)
    # Clamps with the sizes as numbers, not a tensor of them: an exported graph keeps them
    # symbolic (any image size).
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    return torch.stack([x1.clamp(0, w), y1.clamp(0, h), x2.clamp(0, w), y2.clamp(0, h)], dim=1)
