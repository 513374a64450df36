"""Region Proposal Network head (Ren et al., 2015) on FPN levels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_heads import kernels
from det_heads.anchors import AnchorGenerator
from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.dense.anchor_targets import flatten_levels
from det_heads.dense.dense_head import AnchorDenseHead
from det_heads.inputs import check_features, image_size, to_original
from det_heads.losses import CrossEntropyLoss, SmoothL1Loss
from det_heads.samplers import RandomSampler


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
    ) -> list[dict[str, Tensor]]:
        """Proposals of each image (train or test ProposalConfig by self.training).

        Args:
            feats: per level Tensor[B, C, H_l, W_l].
            metas: per image dict(img_shape[, scale_factor]).
            rescale: return boxes in original-image pixels instead of input pixels.
            check_inputs: check metas; False when the caller has.

        Returns:
            Per image dict(boxes Tensor[K, 4] (x1, y1, x2, y2), scores Tensor[K]), by
            decreasing score, detached.
        """
        if check_inputs:
            self._check_inputs("RPNHead.predict", feats, None, metas)
        return self._proposals(self(feats), feats, metas, rescale)

    def loss_and_predict(
        self,
        feats: Sequence[Tensor],
        targets: Sequence[dict],
        metas: Sequence[dict],
        *,
        check_inputs: bool = True,
    ) -> tuple[dict[str, Tensor], list[dict[str, Tensor]]]:
        """loss and predict from one forward pass (two-stage training)."""
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
        cfg = self.train_proposals if self.training else self.test_proposals
        offset = self.coder.offset  # the box width convention of sizes and NMS
        cls, reg = outputs
        anchors = self._grid_anchors(feats)
        results = []
        for i, meta in enumerate(metas):
            boxes_all, scores_all = [], []
            for level_cls, level_reg, level_anchors_ in zip(cls, reg, anchors, strict=True):
                scores = level_cls[i].permute(1, 2, 0).reshape(-1).sigmoid()
                deltas = level_reg[i].permute(1, 2, 0).reshape(-1, 4)
                # sym_min, not an if on the size: an exported graph serves every image size.
                scores, top = scores.topk(torch.sym_min(cfg.nms_pre, scores.numel()))
                deltas, level_anchors_ = deltas[top], level_anchors_[top]
                boxes = self.coder.decode(level_anchors_, deltas, image_size(meta))
                if cfg.min_size > 0:
                    w = boxes[:, 2] - boxes[:, 0] + offset
                    h = boxes[:, 3] - boxes[:, 1] + offset
                    keep = (w >= cfg.min_size) & (h >= cfg.min_size)
                    boxes, scores = boxes[keep], scores[keep]
                keep = kernels.nms(boxes.float(), scores.float(), cfg.nms_thr, offset)
                keep = keep[: cfg.nms_post]
                boxes_all.append(boxes[keep])
                scores_all.append(scores[keep])
            boxes, scores = torch.cat(boxes_all), torch.cat(scores_all)
            scores, top = scores.topk(torch.sym_min(cfg.max_num, scores.numel()))
            boxes = boxes[top]
            if rescale:
                boxes = to_original(boxes, meta)
            results.append({"boxes": boxes, "scores": scores})
        return results
