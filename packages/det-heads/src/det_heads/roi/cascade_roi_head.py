"""Cascade R-CNN second stage (Cai & Vasconcelos, 2018): box heads trained at rising IoUs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.conventions import DET, Conventions
from det_heads.postprocess import DEFAULT_NMS, NMSConfig
from det_heads.roi.bbox_head import BBoxHead
from det_heads.roi.mask_head import MaskHead
from det_heads.roi.standard_roi_head import (
    check_roi_head_inputs,
    compact_detections,
    finish_detections,
    mask_loss,
    pad_proposals,
    per_image_detections,
    proposal_boxes,
    proposal_valid,
    sample_proposals,
)
from det_heads.roi_extractor import RoIExtractor, boxes_to_rois
from det_heads.samplers import RandomSampler

# 2019 cascade_rcnn_r50_fpn configs.
CASCADE_IOUS = (0.5, 0.6, 0.7)
CASCADE_STAGE_WEIGHTS = (1.0, 0.5, 0.25)
CASCADE_STDS = (
    (0.1, 0.1, 0.2, 0.2),
    (0.05, 0.05, 0.1, 0.1),
    (0.033, 0.033, 0.067, 0.067),
)


def cascade_bbox_heads(
    num_classes: int, in_channels: int = 256, roi_size: int = 7
) -> list[BBoxHead]:
    """The zoo's three class-agnostic box heads, with coder stds tightening per stage."""
    return [
        BBoxHead(
            num_classes,
            in_channels,
            roi_size,
            class_agnostic=True,
            coder=DeltaXYWHCoder(stds=stds),
        )
        for stds in CASCADE_STDS
    ]


class CascadeRoIHead(nn.Module):
    """Stages of (RoI extractor, box head[, mask head]); each stage's boxes feed the next.

    Training: stage t assigns the current boxes at IoU CASCADE_IOUS[t] (pos = neg = min_pos),
    samples 512 at 25 % with gt added, adds its losses times stage_weights[t], then regresses
    its sampled boxes (gt boxes left out) into the next stage's proposals. Test: every stage
    runs on the previous stage's regressed boxes; the class logits of all stages are
    averaged (as the 2019 code did, before the softmax) and the last stage's regression is
    applied; with masks, the stages' mask probabilities on the detections are averaged.

    Args:
        bbox_extractors: one RoIExtractor per stage.
        bbox_heads: one BBoxHead per stage (see cascade_bbox_heads).
        assigners, samplers: per stage; default the zoo's.
        stage_weights: loss multiplier of each stage.
        mask_extractors, mask_heads: per stage, or None.
        nms: test-time multiclass NMS.
        conventions: where the test-time NMS runs and how masks are pasted.
    """

    def __init__(
        self,
        bbox_extractors: Sequence[RoIExtractor],
        bbox_heads: Sequence[BBoxHead],
        *,
        assigners: Sequence[MaxIoUAssigner] | None = None,
        samplers: Sequence[RandomSampler] | None = None,
        stage_weights: Sequence[float] = CASCADE_STAGE_WEIGHTS,
        mask_extractors: Sequence[RoIExtractor] | None = None,
        mask_heads: Sequence[MaskHead] | None = None,
        nms: NMSConfig = DEFAULT_NMS,
        conventions: Conventions = DET,
    ) -> None:
        super().__init__()
        self.conventions = conventions
        n = len(bbox_heads)
        assigners = assigners or [MaxIoUAssigner(t, t, t) for t in CASCADE_IOUS[:n]]
        samplers = samplers or [
            RandomSampler(512, 0.25, add_gt_as_proposals=True) for _ in range(n)
        ]
        lengths = {
            "bbox_extractors": len(bbox_extractors),
            "assigners": len(assigners),
            "samplers": len(samplers),
            "stage_weights": len(stage_weights),
        }
        if (mask_extractors is None) != (mask_heads is None):
            raise ValueError("CascadeRoIHead: give both mask_extractors and mask_heads, or neither")
        if mask_heads is not None:
            lengths |= {"mask_extractors": len(mask_extractors), "mask_heads": len(mask_heads)}
        wrong = {k: v for k, v in lengths.items() if v != n}
        if wrong:
            raise ValueError(f"CascadeRoIHead: {n} bbox_heads, but these lengths differ: {wrong}")
        if len({h.num_classes for h in bbox_heads}) != 1:
            raise ValueError("CascadeRoIHead: every stage must have the same num_classes")
        self.bbox_extractors = nn.ModuleList(bbox_extractors)
        self.bbox_heads = nn.ModuleList(bbox_heads)
        self.assigners = list(assigners)
        self.samplers = list(samplers)
        self.stage_weights = tuple(float(w) for w in stage_weights)
        self.mask_extractors = nn.ModuleList(mask_extractors) if mask_extractors else None
        self.mask_heads = nn.ModuleList(mask_heads) if mask_heads else None
        self.nms = nms

    @property
    def num_classes(self) -> int:
        return self.bbox_heads[0].num_classes

    @property
    def num_stages(self) -> int:
        return len(self.bbox_heads)

    def loss(
        self,
        feats: Sequence[Tensor],
        proposals: Sequence[dict | Tensor],
        targets: Sequence[dict],
        metas: Sequence[dict],
        *,
        check_inputs: bool = True,
    ) -> dict[str, Tensor]:
        """Weighted losses of every stage.

        Args:
            feats, proposals, targets, metas, check_inputs: as StandardRoIHead.loss.

        Returns:
            dict(s{t}_loss_cls, s{t}_loss_box[, s{t}_loss_mask]) for stages t = 0, 1, ...
        """
        if check_inputs:
            check_roi_head_inputs("CascadeRoIHead.loss", self, feats, proposals, targets, metas)
        boxes = proposal_boxes(proposals)
        valid: list[Tensor | None] = proposal_valid(proposals)
        losses: dict[str, Tensor] = {}
        for t in range(self.num_stages):
            head, weight = self.bbox_heads[t], self.stage_weights[t]
            samples = [
                sample_proposals(
                    b, tg, self.assigners[t], self.samplers[t], self.num_classes, valid=v
                )
                for b, tg, v in zip(boxes, targets, valid, strict=True)
            ]
            per_image = [s.slot_boxes for s in samples]
            rois = boxes_to_rois(per_image).to(feats[0])
            logits, deltas = head(self.bbox_extractors[t](feats, rois))
            for name, value in head.loss(logits, deltas, head.targets(samples)).items():
                losses[f"s{t}_{name}"] = weight * value
            if self.mask_heads is not None:
                losses[f"s{t}_loss_mask"] = weight * mask_loss(
                    self.mask_extractors[t],
                    self.mask_heads[t],
                    feats,
                    samples,
                    targets,
                    self.conventions.mask_targets,
                )
            if t + 1 < self.num_stages:
                boxes, valid = self._refine(head, per_image, deltas, samples, metas)
        return losses

    @staticmethod
    def _refine(head, per_image, deltas, samples, metas) -> tuple[list[Tensor], list[Tensor]]:
        """Every slot's box regressed by the stage (detached), and which of them are the next
        stage's candidates: the sampled boxes other than the added gt boxes."""
        boxes, valid = [], []
        for b, d, s, meta in zip(
            per_image,
            deltas.detach().split([x.shape[0] for x in per_image]),
            samples,
            metas,
            strict=True,
        ):
            boxes.append(head.decode(b, d[:, :4], meta))
            valid.append(s.valid & ~s.is_gt)
        return boxes, valid

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
        """Detections of each image; Args and Returns as StandardRoIHead.predict."""
        batch = feats[0].shape[0]
        if check_inputs:
            check_roi_head_inputs("CascadeRoIHead.predict", self, feats, proposals, None, metas)
        if not self.nms.soft:
            return self._predict_padded(feats, proposals, metas, mask_probs_only)
        boxes = proposal_boxes(proposals)
        sizes = [b.shape[0] for b in boxes]
        logit_sum = None
        for t in range(self.num_stages):
            head = self.bbox_heads[t]
            rois = boxes_to_rois(boxes).to(feats[0])
            logits, deltas = head(self.bbox_extractors[t](feats, rois))
            logit_sum = logits if logit_sum is None else logit_sum + logits
            if t + 1 < self.num_stages:
                boxes = [
                    head.decode(b, d[:, :4], meta)
                    for b, d, meta in zip(boxes, deltas.split(sizes), metas, strict=True)
                ]
        mean_logits = logit_sum / self.num_stages
        last = self.bbox_heads[-1]
        dets = [
            last.detections(b, lg, d, meta, self.nms, nms_space=self.conventions.nms_space)
            for b, lg, d, meta in zip(
                boxes, mean_logits.split(sizes), deltas.split(sizes), metas, strict=True
            )
        ]
        masks = self._mask_probs(feats, dets) if self.mask_heads is not None else [None] * batch
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
        """predict at fixed sizes, waiting for the device once at the end (as
        StandardRoIHead's)."""
        boxes, valid = pad_proposals(proposals)
        batch, k = boxes.shape[:2]
        logit_sum = None
        for t in range(self.num_stages):
            head = self.bbox_heads[t]
            rois = boxes_to_rois(list(boxes)).to(feats[0])
            logits, deltas = head(self.bbox_extractors[t](feats, rois))
            logit_sum = logits if logit_sum is None else logit_sum + logits
            if t + 1 < self.num_stages:
                per_image = deltas.reshape(batch, k, -1)
                boxes = torch.stack(
                    [
                        head.decode(b, d[:, :4], meta)
                        for b, d, meta in zip(boxes, per_image, metas, strict=True)
                    ]
                )
        last = self.bbox_heads[-1]
        dets = last.padded_detections(
            boxes,
            valid,
            logit_sum / self.num_stages,
            deltas,
            metas,
            self.nms,
            nms_space=self.conventions.nms_space,
        )
        probs = None
        if self.mask_heads is not None:
            probs = torch.stack(self._mask_probs(feats, per_image_detections(dets)))
        paste = self.conventions.mask_paste
        return compact_detections(dets, metas, probs, paste, mask_probs_only)

    def _mask_probs(self, feats: Sequence[Tensor], dets: list[dict]) -> list[Tensor]:
        rois = boxes_to_rois([d["boxes"] for d in dets]).to(feats[0])
        labels = torch.cat([d["labels"] for d in dets])
        probs = sum(
            head.select(head(ext(feats, rois)), labels).sigmoid()
            for ext, head in zip(self.mask_extractors, self.mask_heads, strict=True)
        ) / len(self.mask_heads)
        return list(probs.split([d["boxes"].shape[0] for d in dets]))
