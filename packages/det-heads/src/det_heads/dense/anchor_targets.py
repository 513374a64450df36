"""Training targets of dense heads: the anchors of a batch assigned, sampled and encoded
together (every image has the same anchors; the gts are padded to the most of any image)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from det_heads.anchors import AnchorGenerator
from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.inputs import gt_valid, image_bounds, image_size, padded_size
from det_heads.samplers import PseudoSampler, RandomSampler


@dataclass
class DenseTargets:
    """Per-anchor targets of a batch, anchors of all levels concatenated (level order).

    Attributes:
        labels: int64 Tensor[B, N] in 0..C (C: background).
        label_weights: Tensor[B, N], 1 for sampled negatives, 1 or pos_weight for sampled
            positives, else 0.
        box_targets: Tensor[B, N, 4] encoded deltas (zeros except at positives).
        box_weights: Tensor[B, N, 4], 1 at positives.
        num_pos: int64 Tensor[B] positives per image, on the anchors' device.
        num_neg: int64 Tensor[B] sampled negatives per image.
    """

    labels: Tensor
    label_weights: Tensor
    box_targets: Tensor
    box_weights: Tensor
    num_pos: Tensor
    num_neg: Tensor


def flatten_levels(outputs: Sequence[Tensor], channels: int) -> Tensor:
    """Per-level head outputs Tensor[B, A * channels, H, W] -> Tensor[B, sum(H W A), channels].

    The order (level, row, column, anchor) is the anchor generator's.
    """
    b = outputs[0].shape[0]
    return torch.cat([o.permute(0, 2, 3, 1).reshape(b, -1, channels) for o in outputs], dim=1)


def level_anchors(
    generator: AnchorGenerator,
    feats: Sequence[Tensor],
    metas: Sequence[dict],
    allowed_border: float,
) -> tuple[list[Tensor], list[Tensor]]:
    """(anchors per level Tensor[N_l, 4], valid flags per image bool Tensor[N])."""
    sizes = [tuple(f.shape[-2:]) for f in feats]
    device = feats[0].device
    anchors = generator.grid_anchors(sizes, device)
    valid = []
    for meta in metas:
        img, pad = image_bounds(meta), padded_size(meta)
        if isinstance(pad, Tensor):  # device sizes (a captured step): computed, not cached
            flags = generator.valid_flags_of_sizes(
                sizes, pad.to(device), torch.stack(img).to(device), allowed_border
            )
        else:
            flags = generator.valid_flags(sizes, pad, image_size(meta), allowed_border, device)
        valid.append(torch.cat(flags))
    return anchors, valid


def anchor_targets(
    anchors: Tensor,
    valid: Sequence[Tensor],
    targets: Sequence[dict],
    *,
    assigner: MaxIoUAssigner,
    sampler: RandomSampler | PseudoSampler,
    coder: DeltaXYWHCoder,
    num_classes: int,
    class_agnostic_labels: bool = False,
    pos_weight: float = -1.0,
) -> DenseTargets:
    """Assigns, samples and encodes the anchors of every image.

    Args:
        anchors: Tensor[N, 4] anchors of all levels (x1, y1, x2, y2), pixels.
        valid: per image bool Tensor[N], anchors that may be trained on.
        targets: per image dict(boxes Tensor[G, 4], labels int64[G][, ignore_boxes]
            [, valid bool Tensor[G]: False for padding gts, which match nothing]).
        assigner, sampler, coder: the parts.
        num_classes: C (1 for the RPN's object/background).
        class_agnostic_labels: label every gt 0 (the RPN's "object").
        pos_weight: classification weight of a positive; <= 0: 1, as a negative's (the
            2019 configs' -1).

    Returns:
        DenseTargets; an image without ground truth has every valid anchor negative.
    """
    batch, n = len(targets), anchors.shape[0]
    # The batch's gts padded to the most of any image (sizes known on the host), at least
    # one: a padding gt overlaps nothing, so an image without gts has its anchors negative.
    most = max((t["boxes"].shape[0] for t in targets), default=0) or 1
    gt_boxes = anchors.new_zeros(batch, most, 4)
    gt_labels = torch.zeros(batch, most, dtype=torch.int64, device=anchors.device)
    valid_gts = torch.zeros(batch, most, dtype=torch.bool, device=anchors.device)
    for i, t in enumerate(targets):
        g = t["boxes"].shape[0]
        gt_boxes[i, :g] = t["boxes"].to(anchors)
        if not class_agnostic_labels:  # the RPN labels every gt 0 ("object")
            gt_labels[i, :g] = t["labels"].to(anchors.device)
        real = gt_valid(t, anchors.device)
        valid_gts[i, :g] = True if real is None else real
    # Anchors outside the image are ignored by the assigner rather than left out: the
    # shapes stay those of the anchors, whatever the image.
    gt_inds, _ = assigner.assign_batch(
        anchors,
        gt_boxes,
        valid_gts,
        torch.stack(list(valid)),
        [t.get("ignore_boxes") for t in targets],
    )
    pos, neg = sampler.dense_masks(gt_inds)
    matched = (gt_inds - 1).clamp(min=0)
    labels = torch.where(pos, gt_labels.gather(1, matched), num_classes)
    weight = pos_weight if pos_weight > 0 else 1.0
    label_weights = torch.where(pos, weight, neg.to(anchors.dtype))
    gt_of_anchor = gt_boxes.gather(1, matched[..., None].expand(-1, -1, 4))
    # where, not a product with the weights: an unmatched anchor's deltas may be inf, and
    # 0 * inf would leak a NaN.
    encoded = coder.encode(anchors.repeat(batch, 1), gt_of_anchor.reshape(-1, 4))
    box_targets = torch.where(pos[..., None], encoded.reshape(batch, n, 4), 0.0)
    box_weights = pos[..., None].expand(-1, -1, 4).to(anchors.dtype)
    return DenseTargets(
        labels, label_weights, box_targets, box_weights, pos.sum(dim=1), neg.sum(dim=1)
    )
