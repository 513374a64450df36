"""Two-stage RoI head: box branch and optional mask branch over sampled proposals."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_heads.assigners import MaxIoUAssigner
from det_heads.conventions import DET, Conventions
from det_heads.inputs import (
    check_metas,
    check_proposals,
    check_targets,
    gt_valid,
    original_size,
    scale_factors,
    to_original,
)
from det_heads.postprocess import DEFAULT_NMS, NMSConfig
from det_heads.roi.bbox_head import BBoxHead
from det_heads.roi.mask_head import MaskHead, mask_targets
from det_heads.roi.mask_paste import paste_masks
from det_heads.roi_extractor import RoIExtractor, boxes_to_rois
from det_heads.samplers import OHEMSampler, RandomSampler, SamplingResult
from det_heads.tracing import is_tracing


def proposal_boxes(proposals: Sequence[dict | Tensor]) -> list[Tensor]:
    """Per image Tensor[K, 4], detached, from proposal dicts (boxes[, scores][, valid]) or
    tensors."""
    return [(p["boxes"] if isinstance(p, dict) else p)[:, :4].detach() for p in proposals]


def proposal_valid(proposals: Sequence[dict | Tensor]) -> list[Tensor | None]:
    """Per image the bool Tensor[K] "valid" of padded proposals (RPNHead.predict(padded=True)),
    or None where every proposal is real."""
    return [p.get("valid") if isinstance(p, dict) else None for p in proposals]


def check_roi_head_inputs(
    op: str,
    head: nn.Module,
    feats: Sequence[Tensor],
    proposals: Sequence[dict | Tensor],
    targets: Sequence[dict] | None,
    metas: Sequence[dict],
) -> None:
    """The checks of a RoI head's loss (with targets) or predict (targets None): targets with
    labels in 0..C-1, metas, proposals under the box width offset of the head's conventions.

    Args:
        op: the caller's name, for the messages.
        head: the StandardRoIHead or CascadeRoIHead (its num_classes and conventions).
    """
    batch = feats[0].shape[0]
    if targets is not None:
        check_targets(op, targets, batch, head.num_classes)
    check_metas(op, metas, batch)
    check_proposals(op, proposals, batch, head.conventions.box_offset)


def sample_proposals(
    boxes: Tensor,
    target: dict,
    assigner: MaxIoUAssigner,
    sampler: RandomSampler,
    num_classes: int,
    hardness=None,
    valid: Tensor | None = None,
) -> SamplingResult:
    """Assigns one image's proposals to its ground truth and samples them; valid (bool
    Tensor[K], or None for all) marks the proposals that are candidates at all, the
    target's "valid" (padded ground truth) its real gts."""
    gt_boxes = target["boxes"].to(boxes)
    gt_labels = target["labels"].to(boxes.device)
    real = gt_valid(target, boxes.device)
    if real is None:  # the default path calls the parts as it always has
        assignment = assigner(
            boxes, gt_boxes, gt_labels, target.get("ignore_boxes"), num_classes, valid=valid
        )
        return sampler(assignment, boxes, gt_boxes, gt_labels, hardness)
    assignment = assigner(
        boxes,
        gt_boxes,
        gt_labels,
        target.get("ignore_boxes"),
        num_classes,
        valid=valid,
        gt_valid=real,
    )
    return sampler(assignment, boxes, gt_boxes, gt_labels, hardness, gt_valid=real)


def mask_loss(
    extractor: RoIExtractor,
    head: MaskHead,
    feats: Sequence[Tensor],
    samples: Sequence[SamplingResult],
    targets: Sequence[dict],
    target_style: str = "det",
) -> Tensor:
    """Mask loss of the positives of every image; target_style: see mask_targets.

    The mask head computes on each image's first pos_capacity slots (where the sampler
    puts its positives), a number known from the shapes; the slots that are not positive
    weigh 0.
    """
    for i, t in enumerate(targets):
        if t.get("masks") is None:
            raise ValueError(f"mask loss: targets[{i}] has no 'masks'")
    slots = [_positive_slots(s) for s in samples]
    rois = boxes_to_rois([boxes for boxes, _, _, _ in slots]).to(feats[0])
    logits = head(extractor(feats, rois))
    size = logits.shape[-1]
    gt = torch.cat(
        [
            mask_targets(boxes, gt_inds, t["masks"], size, style=target_style, valid=pos)
            for (boxes, gt_inds, _, pos), t in zip(slots, targets, strict=True)
        ]
    )
    labels = torch.cat([labels for _, _, labels, _ in slots])
    weights = torch.cat([pos for _, _, _, pos in slots])
    return head.loss(logits, gt, labels, weights)


def _positive_slots(s: SamplingResult) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(boxes, gt indices, labels in 0..C-1, is positive) of the slots that may be positive."""
    cap = s.num_slots if s.pos_capacity is None else s.pos_capacity
    labels = s.assignment.labels[s.inds[:cap]]
    # Non-positive slots carry the background label C; any class will do at weight 0.
    labels = torch.where(s.is_pos[:cap], labels, 0)
    return s.slot_boxes[:cap], s.gt_inds[:cap], labels, s.is_pos[:cap]


_DETECTION_KEYS = ("boxes", "scores", "labels", "original_boxes")


def per_image_detections(dets: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """Padded detections of a batch (dict of Tensor[B, M, ...]) as one dict per image, each
    still padded to M."""
    batch = dets["boxes"].shape[0]
    return [{key: dets[key][i] for key in _DETECTION_KEYS if key in dets} for i in range(batch)]


def pad_proposals(proposals: Sequence[dict | Tensor]) -> tuple[Tensor, Tensor]:
    """(boxes Tensor[B, K, 4], valid bool Tensor[B, K]) of per-image proposals: padded ones
    (RPNHead.predict(padded=True)) stacked as they are, others padded to the longest with
    invalid zero boxes (sizes known on the host: nothing is waited for)."""
    boxes, valid = proposal_boxes(proposals), proposal_valid(proposals)
    k = max(b.shape[0] for b in boxes)
    padded_boxes, padded_valid = [], []
    for b, v in zip(boxes, valid, strict=True):
        if v is None:
            v = torch.ones(b.shape[0], dtype=torch.bool, device=b.device)
        padded_boxes.append(F.pad(b, (0, 0, 0, k - b.shape[0])))
        padded_valid.append(F.pad(v, (0, k - b.shape[0])))
    return torch.stack(padded_boxes), torch.stack(padded_valid)


def compact_detections(
    dets: dict[str, Tensor],
    metas: Sequence[dict],
    mask_probs: Tensor | None,
    mask_paste: str = "det",
    mask_probs_only: bool = False,
) -> list[dict[str, Tensor]]:
    """Padded detections of a batch (BBoxHead.padded_detections) -> each image's valid ones
    in original-image pixels, masks pasted: the counts come to the host in one read for the
    whole batch (paste_masks reads nothing more on an accelerator)."""
    if is_tracing():  # a graph selects by the flags (the counts are not known when tracing)
        out = []
        for i, meta in enumerate(metas):
            keep = dets["valid"][i]
            det = {key: dets[key][i][keep] for key in _DETECTION_KEYS if key in dets}
            probs = None if mask_probs is None else mask_probs[i][keep]
            out.append(finish_detections(det, meta, probs, mask_paste, paste=not mask_probs_only))
        return out
    counts = dets["valid"].sum(dim=1).tolist()
    out = []
    for i, (n, meta) in enumerate(zip(counts, metas, strict=True)):
        det = {key: dets[key][i, :n] for key in _DETECTION_KEYS if key in dets}
        probs = None if mask_probs is None else mask_probs[i, :n]
        out.append(finish_detections(det, meta, probs, mask_paste, paste=not mask_probs_only))
    return out


def finish_detections(
    det: dict[str, Tensor],
    meta: dict,
    mask_probs: Tensor | None,
    mask_paste: str = "det",
    *,
    paste: bool = True,
) -> dict[str, Tensor]:
    """Moves one image's detections (input pixels) to the original image; pastes masks.

    Detections whose NMS ran in original pixels (original_boxes, the 2019 code) keep those
    boxes; the 2019 code pasted masks on its input-pixel boxes divided by the scale factor.
    With paste False the masks stay each box's M x M probabilities, under "mask_probs".
    """
    if "original_boxes" in det:
        boxes = det["original_boxes"]
        paste_boxes = det["boxes"] / scale_factors(meta, boxes.device)
    else:
        boxes = paste_boxes = to_original(det["boxes"], meta)
    out = {"boxes": boxes, "scores": det["scores"], "labels": det["labels"]}
    if mask_probs is not None and not paste:
        out["mask_probs"] = mask_probs
    elif mask_probs is not None:
        out["masks"] = paste_masks(mask_probs, paste_boxes, original_size(meta), style=mask_paste)
    return out


class StandardRoIHead(nn.Module):
    """Faster / Mask R-CNN second stage.

    Training: each image's proposals are assigned (0.5 / 0.5 / min_pos 0.5 in the 2019
    config) and sampled (512 RoIs, 25 % positives, gt boxes added); the box head is trained
    on them, the mask head on their positives. Test: box head on every proposal, per-class
    NMS (score 0.05, IoU 0.5, 100 per image), then masks of the detections.

    Args:
        bbox_extractor: RoIExtractor for the box head (7x7 RoIAlign in the zoo).
        bbox_head: the BBoxHead.
        assigner, sampler: proposal assignment and sampling (OHEMSampler works too).
        mask_extractor: RoIExtractor for the mask head (14x14), or None.
        mask_head: the MaskHead, or None for Faster R-CNN.
        nms: test-time multiclass NMS.
        conventions: where the test-time NMS runs and how masks are pasted (nms_space,
            mask_paste); the parts' own conventions are set when they are built.
    """

    def __init__(
        self,
        bbox_extractor: RoIExtractor,
        bbox_head: BBoxHead,
        *,
        assigner: MaxIoUAssigner | None = None,
        sampler: RandomSampler | None = None,
        mask_extractor: RoIExtractor | None = None,
        mask_head: MaskHead | None = None,
        nms: NMSConfig = DEFAULT_NMS,
        conventions: Conventions = DET,
    ) -> None:
        super().__init__()
        self.conventions = conventions
        if (mask_extractor is None) != (mask_head is None):
            raise ValueError("StandardRoIHead: give both mask_extractor and mask_head, or neither")
        self.bbox_extractor = bbox_extractor
        self.bbox_head = bbox_head
        self.assigner = assigner or MaxIoUAssigner(0.5, 0.5, 0.5)
        self.sampler = sampler or RandomSampler(512, 0.25, add_gt_as_proposals=True)
        self.mask_extractor = mask_extractor
        self.mask_head = mask_head
        self.nms = nms

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    def loss(
        self,
        feats: Sequence[Tensor],
        proposals: Sequence[dict | Tensor],
        targets: Sequence[dict],
        metas: Sequence[dict],
        *,
        check_inputs: bool = True,
    ) -> dict[str, Tensor]:
        """Box (and mask) losses.

        Args:
            feats: per level Tensor[B, C, H_l, W_l].
            proposals: per image dict(boxes Tensor[K, 4][, scores]) or Tensor[K, 4],
                (x1, y1, x2, y2), input pixels.
            targets: per image dict(boxes Tensor[G, 4], labels int64[G] in 0..C-1
                [, ignore_boxes][, masks]).
            metas: per image dict(img_shape, ...).
            check_inputs: check proposals, targets and metas; False when the caller has (a
                detector checks its batch once, at its forward, and trusts its RPN).

        Returns:
            dict(loss_cls, loss_box[, loss_mask]).
        """
        if check_inputs:
            check_roi_head_inputs("StandardRoIHead.loss", self, feats, proposals, targets, metas)
        boxes, valid = proposal_boxes(proposals), proposal_valid(proposals)
        samples = [
            sample_proposals(
                b, t, self.assigner, self.sampler, self.num_classes, self._hardness(feats, i), v
            )
            for i, (b, t, v) in enumerate(zip(boxes, targets, valid, strict=True))
        ]
        rois = boxes_to_rois([s.slot_boxes for s in samples]).to(feats[0])
        logits, deltas = self.bbox_head(self.bbox_extractor(feats, rois))
        losses = self.bbox_head.loss(logits, deltas, self.bbox_head.targets(samples))
        if self.mask_head is not None:
            losses["loss_mask"] = mask_loss(
                self.mask_extractor,
                self.mask_head,
                feats,
                samples,
                targets,
                self.conventions.mask_targets,
            )
        return losses

    def _hardness(self, feats: Sequence[Tensor], image: int):
        if not isinstance(self.sampler, OHEMSampler):
            return None
        single = [f[image : image + 1] for f in feats]

        def hardness(boxes: Tensor, labels: Tensor) -> Tensor:
            logits, _ = self.bbox_head(self.bbox_extractor(single, boxes_to_rois([boxes])))
            return F.cross_entropy(logits, labels, reduction="none")

        return hardness

    @torch.no_grad()
    def predict(
        self,
        feats: Sequence[Tensor],
        proposals: Sequence[dict | Tensor],
        metas: Sequence[dict],
        *,
        check_inputs: bool = True,
        mask_probs_only: bool = False,
    ) -> list[dict[str, Tensor]]:
        """Detections of each image.

        Args:
            feats: per level Tensor[B, C, H_l, W_l].
            proposals: per image dict(boxes Tensor[K, 4][, scores]) or Tensor[K, 4], input pixels.
            metas: per image dict(img_shape, scale_factor[, ori_shape]).
            check_inputs: check proposals and metas; False when the caller has.
            mask_probs_only: masks as each box's probabilities, mask_probs Tensor[N, M, M]
                (what an exported graph returns: pasting loops over the boxes in Python).

        Returns:
            Per image dict(boxes Tensor[N, 4] (x1, y1, x2, y2) in original-image pixels,
            scores Tensor[N], labels int64[N] in 0..C-1[, masks uint8 Tensor[N, H, W] in the
            original image, or mask_probs]).
        """
        batch = feats[0].shape[0]
        if check_inputs:
            check_roi_head_inputs("StandardRoIHead.predict", self, feats, proposals, None, metas)
        if not self.nms.soft:
            return self._predict_padded(feats, proposals, metas, mask_probs_only)
        boxes = proposal_boxes(proposals)
        rois = boxes_to_rois(boxes).to(feats[0])
        logits, deltas = self.bbox_head(self.bbox_extractor(feats, rois))
        sizes = [b.shape[0] for b in boxes]
        dets = [
            self.bbox_head.detections(
                b, lg, d, meta, self.nms, nms_space=self.conventions.nms_space
            )
            for b, lg, d, meta in zip(
                boxes, logits.split(sizes), deltas.split(sizes), metas, strict=True
            )
        ]
        masks = self._mask_probs(feats, dets) if self.mask_head is not None else [None] * batch
        paste = self.conventions.mask_paste
        return [
            finish_detections(d, m, p, paste, paste=not mask_probs_only)
            for d, m, p in zip(dets, metas, masks, strict=True)
        ]

    def _predict_padded(
        self,
        feats: Sequence[Tensor],
        proposals: Sequence[dict | Tensor],
        metas: Sequence[dict],
        mask_probs_only: bool,
    ) -> list[dict[str, Tensor]]:
        """predict with every image's proposals and detections at fixed sizes: the device
        is waited for once, when the detections' counts are read at the end."""
        dets, probs = self.padded_predict(feats, proposals, metas)
        return compact_detections(dets, metas, probs, self.conventions.mask_paste, mask_probs_only)

    @torch.no_grad()
    def padded_predict(
        self, feats: Sequence[Tensor], proposals: Sequence[dict | Tensor], metas: Sequence[dict]
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        """predict up to its one host read: every image's detections at fixed sizes, as
        compact_detections takes them (a captured CUDA graph ends here). Hard NMS only.

        Args:
            feats, proposals, metas: as predict (unchecked).

        Returns:
            (BBoxHead.padded_detections of the batch (Tensor[B, M, ...], valid flags),
            mask probabilities Tensor[B, M, S, S] of each detection's label, or None without
            a mask head).
        """
        boxes, valid = pad_proposals(proposals)
        rois = boxes_to_rois(list(boxes)).to(feats[0])
        logits, deltas = self.bbox_head(self.bbox_extractor(feats, rois))
        dets = self.bbox_head.padded_detections(
            boxes, valid, logits, deltas, metas, self.nms, nms_space=self.conventions.nms_space
        )
        probs = None
        if self.mask_head is not None:
            probs = torch.stack(self._mask_probs(feats, per_image_detections(dets)))
        return dets, probs

    def _mask_probs(self, feats: Sequence[Tensor], dets: list[dict]) -> list[Tensor]:
        rois = boxes_to_rois([d["boxes"] for d in dets]).to(feats[0])
        logits = self.mask_head(self.mask_extractor(feats, rois))
        labels = torch.cat([d["labels"] for d in dets])
        probs = self.mask_head.select(logits, labels).sigmoid()
        return list(probs.split([d["boxes"].shape[0] for d in dets]))
