"""Region Proposal Network head (Ren et al., 2015) on FPN levels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_heads import kernels
from det_heads.anchors import AnchorGenerator
from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder, clip_boxes
from det_heads.dense.anchor_targets import flatten_levels
from det_heads.dense.dense_head import AnchorDenseHead
from det_heads.inputs import check_features, image_bounds, to_original
from det_heads.losses import CrossEntropyLoss, SmoothL1Loss
from det_heads.samplers import RandomSampler
from det_heads.tracing import is_tracing


@dataclass(frozen=True)
class ProposalConfig:
    """How proposals are made; defaults from the 2019 RPN test config.

    Attributes:
        nms_pre: best-scoring anchors kept per level before NMS.
        nms_post: boxes kept per level after NMS.
        max_num: proposals kept per image, by score, over all levels.
        nms_thr: NMS IoU threshold.
        min_size: boxes with width or height (x2 - x1 + the coder's offset) below this are
            dropped (0: none; torchvision's RPN: 0.001).
    """

    nms_pre: int = 1000
    nms_post: int = 1000
    max_num: int = 1000
    nms_thr: float = 0.7
    min_size: float = 0.0


# 2019 rpn train config (used to feed the R-CNN head during training).
TRAIN_PROPOSALS = ProposalConfig(nms_pre=2000, nms_post=2000, max_num=2000)
TEST_PROPOSALS = ProposalConfig()


class RPNHead(AnchorDenseHead):
    """Shared 3x3 conv, then per anchor an objectness logit and 4 box deltas.

    Defaults follow the 2019 FPN RPN configs: anchors scale 8, ratios (0.5, 1, 2), strides
    4..64; coder stds 1; assigner 0.7 / 0.3 / min_pos 0.3 with ignore IoF 0.5 off (-1);
    256 anchors per image at 0.5 positives; sigmoid cross entropy; smooth L1 beta 1/9;
    anchors must lie inside the image (allowed_border 0).

    Args:
        in_channels: channels of each input level.
        feat_channels: channels of the shared conv.
        anchor_generator, coder, assigner, sampler, cls_loss, box_loss: the parts.
        allowed_border: see AnchorGenerator.valid_flags.
        pos_weight: objectness weight of a positive anchor; <= 0: 1 (see anchor_targets).
        train_proposals, test_proposals: ProposalConfig in train / eval mode.
    """

    name = "RPNHead"

    def __init__(
        self,
        in_channels: int = 256,
        feat_channels: int = 256,
        *,
        anchor_generator: AnchorGenerator | None = None,
        coder: DeltaXYWHCoder | None = None,
        assigner: MaxIoUAssigner | None = None,
        sampler: RandomSampler | None = None,
        cls_loss: CrossEntropyLoss | None = None,
        box_loss: SmoothL1Loss | None = None,
        allowed_border: float = 0,
        pos_weight: float = -1.0,
        train_proposals: ProposalConfig = TRAIN_PROPOSALS,
        test_proposals: ProposalConfig = TEST_PROPOSALS,
    ) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator or AnchorGenerator()
        self.coder = coder or DeltaXYWHCoder(stds=(1.0, 1.0, 1.0, 1.0))
        self.assigner = assigner or MaxIoUAssigner(0.7, 0.3, 0.3)
        self.sampler = sampler or RandomSampler(256, 0.5, add_gt_as_proposals=False)
        self.cls_loss = cls_loss or CrossEntropyLoss(use_sigmoid=True)
        self.box_loss = box_loss or SmoothL1Loss(beta=1 / 9)
        self.allowed_border = allowed_border
        self.pos_weight = pos_weight
        self.train_proposals = train_proposals
        self.test_proposals = test_proposals
        anchors = self.anchor_generator.num_anchors
        if len(set(anchors)) != 1:
            raise ValueError(
                f"RPNHead: every level needs the same anchors per location, got {anchors}"
            )
        self.num_anchors = anchors[0]
        self.conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.cls = nn.Conv2d(feat_channels, self.num_anchors, 1)
        self.reg = nn.Conv2d(feat_channels, self.num_anchors * 4, 1)
        for m in (self.conv, self.cls, self.reg):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level objectness Tensor[B, A, H, W] and deltas Tensor[B, 4A, H, W]."""
        check_features("RPNHead", feats, self.anchor_generator.num_levels)
        cls, reg = [], []
        for f in feats:
            x = F.relu(self.conv(f))
            cls.append(self.cls(x))
            reg.append(self.reg(x))
        return cls, reg

    def predict(
        self,
        feats: Sequence[Tensor],
        metas: Sequence[dict],
        rescale: bool = False,
        *,
        check_inputs: bool = True,
        padded: bool = False,
    ) -> list[dict[str, Tensor]]:
        """Proposals of each image (train or test ProposalConfig by self.training).

        Args:
            feats: per level Tensor[B, C, H_l, W_l].
            metas: per image dict(img_shape[, scale_factor]).
            rescale: return boxes in original-image pixels instead of input pixels.
            check_inputs: check metas; False when the caller has.
            padded: keep every image's proposals at the fixed size min(max_num, levels x
                nms_post) with a "valid" flag (the valid ones first), as an R-CNN head takes
                them without waiting for the device; False: the valid ones only, the counts
                read to the host once for the batch.

        Returns:
            Per image dict(boxes Tensor[K, 4] (x1, y1, x2, y2), scores Tensor[K][, valid
            bool Tensor[K]]), by decreasing score, detached.
        """
        if check_inputs:
            self._check_inputs("RPNHead.predict", feats, None, metas)
        proposals = self._proposals(self(feats), feats, metas, rescale)
        return proposals if padded else compact(proposals)

    def loss_and_predict(
        self,
        feats: Sequence[Tensor],
        targets: Sequence[dict],
        metas: Sequence[dict],
        *,
        check_inputs: bool = True,
    ) -> tuple[dict[str, Tensor], list[dict[str, Tensor]]]:
        """loss and predict (padded) from one forward pass (two-stage training)."""
        if check_inputs:
            self._check_inputs("RPNHead.loss_and_predict", feats, targets, metas)
        outputs = self(feats)
        return self._loss(outputs, feats, targets, metas), self._proposals(
            outputs, feats, metas, False
        )

    def _loss(self, outputs, feats, targets, metas) -> dict[str, Tensor]:
        """Objectness and box losses, normalised by the sampled anchors: dict(loss_rpn_cls,
        loss_rpn_box) scalar Tensors (see AnchorDenseHead.loss; labels are not used, every
        gt is an object)."""
        cls, reg = outputs
        t = self._targets(
            feats,
            targets,
            metas,
            num_classes=1,
            class_agnostic_labels=True,
            pos_weight=self.pos_weight,
        )
        # Normalised by the sampled anchors, as the 2019 RPN did (counted on the device).
        num_samples = (t.num_pos.sum() + t.num_neg.sum()).clamp(min=1).to(cls[0].dtype)
        logits = flatten_levels(cls, 1).reshape(-1, 1)
        deltas = flatten_levels(reg, 4).reshape(-1, 4)
        loss_cls = self.cls_loss(
            logits, t.labels.reshape(-1), t.label_weights.reshape(-1), num_samples
        )
        loss_box = self.box_loss(
            deltas, t.box_targets.reshape(-1, 4), t.box_weights.reshape(-1, 4), num_samples
        )
        return {"loss_rpn_cls": loss_cls, "loss_rpn_box": loss_box}

    @torch.no_grad()
    def _proposals(self, outputs, feats, metas, rescale) -> list[dict[str, Tensor]]:
        """Padded proposals of every image: one top-k per level, one decode and one NMS call
        for the whole batch, each (image, level) its own NMS group; no host synchronisation.

        The 2019 order per image and level (top nms_pre scores, decode, min_size, NMS, first
        nms_post), then the best max_num over the levels. A box below min_size gets the
        score -inf, which NMS neither keeps nor lets suppress (det_ops.batched_nms_padded).
        """
        cfg = self.train_proposals if self.training else self.test_proposals
        offset = self.coder.offset  # the box width convention of sizes and NMS
        cls, reg = outputs
        batch, num_levels = len(metas), len(cls)
        anchors = self._grid_anchors(feats)
        scores_all, deltas_all, anchors_all, groups_all = [], [], [], []
        for level, (level_cls, level_reg, level_anchors_) in enumerate(
            zip(cls, reg, anchors, strict=True)
        ):
            scores = level_cls.permute(0, 2, 3, 1).reshape(batch, -1).sigmoid()
            deltas = level_reg.permute(0, 2, 3, 1).reshape(batch, -1, 4)
            # sym_min, not an if on the size: an exported graph serves every image size.
            scores, top = scores.topk(torch.sym_min(cfg.nms_pre, scores.shape[1]), dim=1)
            scores_all.append(scores)
            deltas_all.append(deltas.gather(1, top[..., None].expand(-1, -1, 4)))
            anchors_all.append(level_anchors_[top])
            groups_all.append(torch.full_like(top, level))
        scores = torch.cat(scores_all, dim=1)  # [B, K]
        boxes = self.coder.decode(
            torch.cat(anchors_all, dim=1).reshape(-1, 4),
            torch.cat(deltas_all, dim=1).reshape(-1, 4),
        ).reshape(batch, -1, 4)
        boxes = torch.stack(
            [
                clip_boxes(b, image_bounds(meta), offset)
                for b, meta in zip(boxes, metas, strict=True)
            ]
        )
        if cfg.min_size > 0:
            w = boxes[..., 2] - boxes[..., 0] + offset
            h = boxes[..., 3] - boxes[..., 1] + offset
            scores = scores.masked_fill((w < cfg.min_size) | (h < cfg.min_size), -math.inf)
        image = torch.arange(batch, device=scores.device)[:, None] * num_levels
        groups = image + torch.cat(groups_all, dim=1)
        keep, _ = kernels.batched_nms_padded(
            boxes.reshape(-1, 4).float(),
            scores.reshape(-1).float(),
            groups.reshape(-1),
            cfg.nms_thr,
            num_groups=batch * num_levels,
            max_per_group=cfg.nms_post,
            offset=offset,
        )
        kept = (keep >= 0).reshape(batch, -1)  # [B, levels * nms_post]
        rows = keep.clamp(min=0).reshape(batch, -1)
        flat_scores, flat_boxes = scores.reshape(-1), boxes.reshape(-1, 4)
        scores = flat_scores[rows].masked_fill(~kept, -math.inf)
        scores, top = scores.topk(torch.sym_min(cfg.max_num, scores.shape[1]), dim=1)
        boxes = flat_boxes[rows.gather(1, top)]
        valid = kept.gather(1, top)
        results = []
        for b, s, v, meta in zip(boxes, scores, valid, metas, strict=True):
            results.append(
                {"boxes": to_original(b, meta) if rescale else b, "scores": s, "valid": v}
            )
        return results


def compact(proposals: Sequence[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
    """Padded proposals (boxes, scores, valid: the valid ones first) -> the valid ones only,
    with one read of the counts to the host for the whole batch."""
    if not proposals or "valid" not in proposals[0]:
        return list(proposals)
    if is_tracing():  # a graph selects by the flags (the counts are not known when tracing)
        return [
            {"boxes": p["boxes"][p["valid"]], "scores": p["scores"][p["valid"]]} for p in proposals
        ]
    counts = torch.stack([p["valid"].sum() for p in proposals]).tolist()
    return [
        {"boxes": p["boxes"][:n], "scores": p["scores"][:n]}
        for p, n in zip(proposals, counts, strict=True)
    ]
