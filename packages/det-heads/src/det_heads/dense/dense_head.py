"""What the anchor-based dense heads (RPN, RetinaNet, SSD) share: the loss's input checks and
anchor targets, and the per-image detections of a classifying head (RetinaNet, SSD).

A head sets ``name``, ``anchor_generator``, ``coder``, ``assigner``, ``sampler``,
``allowed_border`` and ``num_classes`` (None: class-agnostic, the RPN), and implements
``forward(feats) -> (cls, reg)`` and ``_loss(outputs, feats, targets, metas)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from det_heads.dense.anchor_targets import DenseTargets, anchor_targets, level_anchors
from det_heads.dense.detections import dense_detections
from det_heads.inputs import check_features, check_metas, check_targets


class AnchorDenseHead(nn.Module):
    """Base of the dense heads: :meth:`loss` checks its inputs once and hands the head's
    outputs to its ``_loss``; :meth:`predict` gives each image's detections from the class
    scores of :meth:`class_scores` (a classifying head)."""

    name = "AnchorDenseHead"
    num_classes: int | None = None

    def loss(
        self,
        feats: Sequence[Tensor],
        targets: Sequence[dict],
        metas: Sequence[dict],
        *,
        check_inputs: bool = True,
    ) -> dict[str, Tensor]:
        """The head's named losses (see its ``_loss``).

        Args:
            feats: per level Tensor[B, C_in, H_l, W_l].
            targets: per image dict(boxes Tensor[G, 4], labels int64[G] in 0..C-1
                [, ignore_boxes]).
            metas: per image dict(img_shape[, pad_shape]).
            check_inputs: check targets and metas; False when the caller has (a detector
                checks its batch once, at its forward).

        Returns:
            dict of scalar loss Tensors.
        """
        if check_inputs:
            self._check_inputs(f"{self.name}.loss", feats, targets, metas)
        return self._loss(self(feats), feats, targets, metas)

    def _check_inputs(
        self,
        op: str,
        feats: Sequence[Tensor],
        targets: Sequence[dict] | None,
        metas: Sequence[dict],
    ) -> None:
        check_features(op, feats, self.anchor_generator.num_levels)
        batch = feats[0].shape[0]
        if targets is not None:
            check_targets(op, targets, batch, self.num_classes)
        check_metas(op, metas, batch)

    def _targets(
        self, feats: Sequence[Tensor], targets: Sequence[dict], metas: Sequence[dict], **options
    ) -> DenseTargets:
        """The batch's anchor targets with the head's assigner, sampler and coder; options go
        to det_heads.dense.anchor_targets.anchor_targets."""
        anchors, valid = level_anchors(self.anchor_generator, feats, metas, self.allowed_border)
        return anchor_targets(
            torch.cat(anchors),
            valid,
            targets,
            assigner=self.assigner,
            sampler=self.sampler,
            coder=self.coder,
            **options,
        )

    def _grid_anchors(self, feats: Sequence[Tensor]) -> list[Tensor]:
        return self.anchor_generator.grid_anchors(
            [tuple(f.shape[-2:]) for f in feats], feats[0].device
        )

    def class_scores(self, logits: Tensor) -> Tensor:
        """Tensor[N, C] class probabilities of Tensor[N, L] logits (the head's own)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(
        self, feats: Sequence[Tensor], metas: Sequence[dict], *, check_inputs: bool = True
    ) -> list[dict[str, Tensor]]:
        """Detections of each image (see det_heads.dense.detections.dense_detections).

        Args:
            feats: per level Tensor[B, C_in, H_l, W_l].
            metas: per image dict(img_shape[, scale_factor]).
            check_inputs: check metas; False when the caller has.

        Returns:
            Per image dict(boxes Tensor[K, 4] (x1, y1, x2, y2) in original-image pixels,
            scores Tensor[K], labels int64[K] in 0..C-1), K <= nms.max_per_img.
        """
        if check_inputs:
            check_metas(f"{self.name}.predict", metas, feats[0].shape[0])
        cls, reg = self(feats)
        anchors = self._grid_anchors(feats)
        logits_per_anchor = cls[0].shape[1] // (reg[0].shape[1] // 4)
        results = []
        for i, meta in enumerate(metas):
            scores = [
                self.class_scores(c[i].permute(1, 2, 0).reshape(-1, logits_per_anchor)) for c in cls
            ]
            deltas = [r[i].permute(1, 2, 0).reshape(-1, 4) for r in reg]
            results.append(
                dense_detections(
                    scores,
                    deltas,
                    anchors,
                    meta,
                    coder=self.coder,
                    nms_pre=self.nms_pre,
                    nms=self.nms,
                    candidates=self.candidates,
                )
            )
        return results
