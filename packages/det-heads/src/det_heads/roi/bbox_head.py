"""R-CNN box head: shared fully connected layers, then a classifier and a box regressor."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_heads.coders import DeltaXYWHCoder, clip_boxes
from det_heads.conv_norm import check_norm, conv_with_norm
from det_heads.inputs import image_bounds, scale_factors
from det_heads.losses import CrossEntropyLoss, SmoothL1Loss
from det_heads.postprocess import DEFAULT_NMS, NMSConfig, candidate_nms, padded_multiclass_nms
from det_heads.samplers import SamplingResult


@dataclass
class RoITargets:
    """Training targets of a batch's RoI slots, images one after another.

    Attributes:
        labels: int64 Tensor[K] in 0..C (C: background, and padding slots).
        label_weights: Tensor[K] classification weights: 1 (or pos_weight) at sampled
            RoIs, 0 at padding.
        box_targets: Tensor[K, 4] encoded deltas, zeros except at positives.
        box_weights: Tensor[K, 4], 1 at positives.
        num_samples: int64 scalar Tensor: the sampled RoIs (the losses' divisor), on the
            device.
    """

    labels: Tensor
    label_weights: Tensor
    box_targets: Tensor
    box_weights: Tensor
    num_samples: Tensor


class BBoxHead(nn.Module):
    """Shared convs and FCs over pooled RoI features; C + 1 class logits and 4 (or 4 C) deltas.

    Defaults follow the 2019 FPN R-CNN config ("SharedFCBBoxHead"): no convs, 2 FCs of 1024
    over 7x7x256 features, class-specific regression, coder stds (0.1, 0.1, 0.2, 0.2), softmax
    cross entropy, smooth L1 beta 1. The zoo's GN rows use 4 convs with GroupNorm and 1 FC
    ("4conv1fc": num_convs=4, num_fcs=1, norm="GN").

    Args:
        num_classes: C, object classes; the classifier adds background as logit C.
        in_channels: channels of the pooled features.
        roi_size: side of the pooled features.
        fc_channels: width of the shared FCs.
        num_fcs: number of shared FCs.
        num_convs: shared 3x3 convs (each followed by ReLU) before the FCs.
        conv_channels: channels of those convs.
        norm: None (convs with a bias) or "GN" (bias-free convs followed by GroupNorm).
        class_agnostic: one set of deltas for every class (Cascade R-CNN).
        coder, cls_loss, box_loss: the parts.
        pos_weight: classification weight of a positive RoI; <= 0: 1, as a negative's (the
            2019 configs' -1). The loss is still averaged over the sampled RoIs.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        roi_size: int = 7,
        fc_channels: int = 1024,
        num_fcs: int = 2,
        *,
        num_convs: int = 0,
        conv_channels: int = 256,
        norm: str | None = None,
        class_agnostic: bool = False,
        coder: DeltaXYWHCoder | None = None,
        cls_loss: CrossEntropyLoss | None = None,
        box_loss: SmoothL1Loss | None = None,
        pos_weight: float = -1.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"BBoxHead: num_classes must be >= 1, got {num_classes}")
        check_norm("BBoxHead", norm)
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.coder = coder or DeltaXYWHCoder(stds=(0.1, 0.1, 0.2, 0.2))
        self.cls_loss = cls_loss or CrossEntropyLoss()
        self.box_loss = box_loss or SmoothL1Loss(beta=1.0)
        self.pos_weight = pos_weight
        fc_in_channels = conv_channels if num_convs else in_channels
        dims = [fc_in_channels * roi_size * roi_size] + [fc_channels] * num_fcs
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.cls = nn.Linear(dims[-1], num_classes + 1)
        self.reg = nn.Linear(dims[-1], 4 if class_agnostic else 4 * num_classes)
        for fc in self.fcs:
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.reg.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.reg.bias)
        # Made after the FCs, so that a seed gives the GN head the same initial weights it
        # had when it was a subclass adding its convs (the quickstart's results stay
        # reproducible).
        self.convs = nn.ModuleList(
            conv_with_norm(
                in_channels if i == 0 else conv_channels, conv_channels, 3, norm, roi_features=True
            )
            for i in range(num_convs)
        )
        for conv in self.convs:
            if isinstance(conv, nn.Conv2d):  # a ConvGN has initialised itself
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(conv.bias)

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        """Tensor[K, C_in, S, S] -> (logits Tensor[K, C + 1], deltas Tensor[K, 4 or 4 C])."""
        x = roi_feats
        for conv in self.convs:
            x = F.relu(conv(x))
        x = x.flatten(1)
        for fc in self.fcs:
            x = F.relu(fc(x))
        return self.cls(x), self.reg(x)

    def targets(self, samples: Sequence[SamplingResult]) -> RoITargets:
        """Training targets of every slot of every image (SamplingResult's slot order).

        Padding slots get weight 0 and zero box targets (a select, so that their deltas,
        which may not be finite, never reach a loss).
        """
        labels, label_weights, box_targets, box_weights = [], [], [], []
        for s in samples:
            pos = s.is_pos
            labels.append(s.labels(self.num_classes))
            weight = self.pos_weight if self.pos_weight > 0 else 1.0
            label_weights.append(torch.where(pos, weight, s.is_neg.to(s.boxes.dtype)))
            encoded = self.coder.encode(s.slot_boxes, s.slot_gt_boxes)
            box_targets.append(torch.where(pos[:, None], encoded, 0.0))
            box_weights.append(pos[:, None].expand(-1, 4).to(s.boxes.dtype))
        return RoITargets(
            torch.cat(labels),
            torch.cat(label_weights),
            torch.cat(box_targets),
            torch.cat(box_weights),
            torch.stack([s.valid.sum() for s in samples]).sum(),
        )

    def loss(self, logits: Tensor, deltas: Tensor, targets: RoITargets) -> dict[str, Tensor]:
        """Classification and box losses, both averaged over the sampled RoIs.

        Args:
            logits: Tensor[K, C + 1]; deltas: Tensor[K, 4] or Tensor[K, 4 C], one row per
                slot of targets.
            targets: the slots' RoITargets.

        Returns:
            dict(loss_cls, loss_box).
        """
        labels = targets.labels
        # Counted on the device, at least one.
        k = targets.num_samples.clamp(min=1).to(logits.dtype)
        if not self.class_agnostic:
            # Only the deltas of the RoI's own class are trained; background picks class 0's,
            # which its zero weight then ignores.
            cls = labels.clamp(max=self.num_classes - 1)
            rows = torch.arange(labels.shape[0], device=labels.device)
            deltas = deltas.reshape(-1, self.num_classes, 4)[rows, cls]
        weights = targets.label_weights.to(logits.dtype)
        return {
            "loss_cls": self.cls_loss(logits, labels, weights, k),
            "loss_box": self.box_loss(deltas, targets.box_targets, targets.box_weights, k),
        }

    def decode(self, boxes: Tensor, deltas: Tensor, meta: dict) -> Tensor:
        """Boxes Tensor[K, 4] moved by deltas Tensor[K, 4 or 4 C], clipped to the image."""
        return self.coder.decode(boxes, deltas, image_bounds(meta))

    def padded_detections(
        self,
        boxes: Tensor,
        valid: Tensor,
        logits: Tensor,
        deltas: Tensor,
        metas: Sequence[dict],
        nms: NMSConfig = DEFAULT_NMS,
        *,
        nms_space: str = "input",
    ) -> dict[str, Tensor]:
        """detections of a whole batch at fixed sizes, without host synchronisation.

        Args:
            boxes: Tensor[B, K, 4] each image's RoIs (x1, y1, x2, y2), input pixels.
            valid: bool Tensor[B, K], the RoIs that are real (not padding).
            logits, deltas: the box head's outputs for the B x K RoIs, image by image.
            metas: per image dict(img_shape[, scale_factor]).
            nms, nms_space: as detections (soft-NMS is not taken here).

        Returns:
            dict(boxes Tensor[B, M, 4] input pixels, scores Tensor[B, M], labels int64
            Tensor[B, M], valid bool Tensor[B, M][, original_boxes Tensor[B, M, 4]]): as
            detections image by image, padded to M = nms.max_per_img (postprocess.
            padded_multiclass_nms).
        """
        batch, k = boxes.shape[:2]
        c = self.num_classes
        scores = logits.softmax(dim=1)[:, :c].reshape(batch, k, c)
        scores = scores.masked_fill(~valid[..., None], -math.inf)
        decoded = self.coder.decode(boxes.reshape(-1, 4), deltas).reshape(batch, k, -1, 4)
        decoded = torch.stack(
            [
                clip_boxes(d, image_bounds(m), self.coder.offset)
                for d, m in zip(decoded, metas, strict=True)
            ]
        ).expand(batch, k, c, 4)
        if nms_space != "original":
            return padded_multiclass_nms(decoded, scores, nms, offset=self.coder.offset)
        factors = torch.stack([scale_factors(m, decoded.device) for m in metas])
        original = decoded / factors[:, None, None, :]
        dets = padded_multiclass_nms(original, scores, nms, offset=self.coder.offset)
        dets["original_boxes"] = dets["boxes"]
        dets["boxes"] = dets["boxes"] * factors[:, None, :]
        return dets

    def detections(
        self,
        boxes: Tensor,
        logits: Tensor,
        deltas: Tensor,
        meta: dict,
        nms: NMSConfig = DEFAULT_NMS,
        *,
        nms_space: str = "input",
    ) -> dict[str, Tensor]:
        """Detections of one image from its RoIs' outputs, in input pixels.

        Args:
            boxes: Tensor[K, 4] the RoIs (x1, y1, x2, y2), input pixels.
            logits: Tensor[K, C + 1] class logits (or averaged logits).
            deltas: Tensor[K, 4] or Tensor[K, 4 C].
            meta: the image's dict(img_shape[, scale_factor]).
            nms: multiclass NMS settings.
            nms_space: "input" (NMS on the decoded boxes) or "original" (the 2019 code's
                bbox_head.py get_det_bboxes: boxes divided by the scale factor first).

        Returns:
            dict(boxes Tensor[N, 4], scores Tensor[N], labels int64[N] in 0..C-1); with
            nms_space "original" also original_boxes Tensor[N, 4], the boxes NMS kept, and
            boxes is those times the scale factor, as the 2019 code fed its mask head.
        """
        scores = logits.softmax(dim=1)[:, : self.num_classes]
        # Only the (RoI, class) pairs above the threshold are decoded (a few hundred instead
        # of K x C), in the order multiclass_nms takes them: the same detections.
        rows, labels = (scores > nms.score_thr).nonzero(as_tuple=True)
        own = deltas.reshape(deltas.shape[0], deltas.shape[1] // 4, 4)  # sizes: K may be 0
        own = own[rows, labels] if own.shape[1] > 1 else own[rows, 0]
        decoded = self.decode(boxes[rows], own, meta)
        offset = self.coder.offset
        if nms_space == "original":
            factors = scale_factors(meta, decoded.device)
            out_boxes, out_scores, out_labels = candidate_nms(
                decoded / factors, scores[rows, labels], labels, nms, offset=offset
            )
            return {
                "boxes": out_boxes * factors,
                "original_boxes": out_boxes,
                "scores": out_scores,
                "labels": out_labels,
            }
        out_boxes, out_scores, out_labels = candidate_nms(
            decoded, scores[rows, labels], labels, nms, offset=offset
        )
        return {"boxes": out_boxes, "scores": out_scores, "labels": out_labels}
