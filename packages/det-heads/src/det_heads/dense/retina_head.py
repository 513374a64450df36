"""RetinaNet head (Lin et al., 2017): focal-loss classification over octave anchors."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from det_heads.anchors import AnchorGenerator, RetinaAnchorGenerator
from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.dense.anchor_targets import flatten_levels
from det_heads.dense.dense_head import AnchorDenseHead
from det_heads.inputs import check_features
from det_heads.losses import FocalLoss, SmoothL1Loss
from det_heads.postprocess import DEFAULT_NMS, NMSConfig
from det_heads.samplers import PseudoSampler


class RetinaHead(AnchorDenseHead):
    """Two towers of stacked 3x3 convs, one classifying each anchor, one regressing it.

    Defaults follow the 2019 RetinaNet config: 4 convs of 256 per tower, octave anchors
    (base scale 4, 3 scales, ratios 0.5 / 1 / 2, strides 8..128), coder stds 1, assigner
    0.5 / 0.4 / min_pos 0, every anchor used (pseudo sampler, allowed_border -1), focal
    loss gamma 2 alpha 0.25, smooth L1 beta 0.11, classifier bias from prior 0.01; test:
    1000 anchors per level, score 0.05, NMS 0.5, 100 detections.

    Args:
        num_classes: C, object classes (no background logit).
        in_channels: channels of each input level.
        feat_channels: channels of the tower convs.
        stacked_convs: convs per tower.
        prior_prob: initial foreground probability of every anchor.
        anchor_generator, coder, assigner, cls_loss, box_loss: the parts.
        allowed_border: see AnchorGenerator.valid_flags (-1: every anchor).
        pos_weight: classification weight of a positive anchor; <= 0: 1 (see anchor_targets).
        loss_normalizer: "batch" (the 2019 code: both losses summed over the batch and divided
            by its positives, counting at least one per image) or "image" (torchvision: each
            image's losses divided by its own positives, at least one, then the images'
            mean).
        nms_pre: candidates kept per level before NMS at test time.
        candidates: "anchor" or "pair", see dense_detections.
        nms: test-time multiclass NMS.
    """

    name = "RetinaHead"

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        *,
        prior_prob: float = 0.01,
        anchor_generator: AnchorGenerator | None = None,
        coder: DeltaXYWHCoder | None = None,
        assigner: MaxIoUAssigner | None = None,
        cls_loss: FocalLoss | None = None,
        box_loss: SmoothL1Loss | None = None,
        allowed_border: float = -1,
        pos_weight: float = -1.0,
        loss_normalizer: str = "batch",
        nms_pre: int = 1000,
        nms: NMSConfig = DEFAULT_NMS,
        candidates: str = "anchor",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"RetinaHead: num_classes must be >= 1, got {num_classes}")
        if candidates not in ("anchor", "pair"):
            raise ValueError(
                f"RetinaHead: candidates must be 'anchor' or 'pair', got {candidates!r}"
            )
        self.candidates = candidates
        self.num_classes = num_classes
        self.anchor_generator = anchor_generator or RetinaAnchorGenerator()
        self.coder = coder or DeltaXYWHCoder(stds=(1.0, 1.0, 1.0, 1.0))
        self.assigner = assigner or MaxIoUAssigner(0.5, 0.4, 0.0)
        self.sampler = PseudoSampler()
        self.cls_loss = cls_loss or FocalLoss(gamma=2.0, alpha=0.25)
        self.box_loss = box_loss or SmoothL1Loss(beta=0.11)
        self.allowed_border = allowed_border
        if loss_normalizer not in ("batch", "image"):
            raise ValueError(
                f"RetinaHead: loss_normalizer must be 'batch' or 'image', got {loss_normalizer!r}"
            )
        self.pos_weight = pos_weight
        self.loss_normalizer = loss_normalizer
        self.nms_pre = nms_pre
        self.nms = nms
        anchors = self.anchor_generator.num_anchors
        if len(set(anchors)) != 1:
            raise ValueError(f"RetinaHead: every level needs the same anchors, got {anchors}")
        self.num_anchors = anchors[0]

        def tower() -> nn.Sequential:
            layers: list[nn.Module] = []
            for i in range(stacked_convs):
                layers += [
                    nn.Conv2d(
                        in_channels if i == 0 else feat_channels, feat_channels, 3, padding=1
                    ),
                    nn.ReLU(inplace=True),
                ]
            return nn.Sequential(*layers)

        self.cls_tower, self.reg_tower = tower(), tower()
        last = feat_channels if stacked_convs else in_channels
        self.cls = nn.Conv2d(last, self.num_anchors * num_classes, 3, padding=1)
        self.reg = nn.Conv2d(last, self.num_anchors * 4, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        # Starts every anchor at foreground probability prior_prob, so that the many
        # easy negatives do not swamp the first iterations' loss.
        nn.init.constant_(self.cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level logits Tensor[B, A * C, H, W] and deltas Tensor[B, A * 4, H, W]."""
        check_features("RetinaHead", feats, self.anchor_generator.num_levels)
        cls = [self.cls(self.cls_tower(f)) for f in feats]
        reg = [self.reg(self.reg_tower(f)) for f in feats]
        return cls, reg

    def _loss(self, outputs, feats, targets, metas) -> dict[str, Tensor]:
        """Focal classification and smooth L1 box losses, normalised by the positives:
        dict(loss_cls, loss_box) scalar Tensors (see AnchorDenseHead.loss)."""
        cls, reg = outputs
        batch = feats[0].shape[0]
        t = self._targets(
            feats, targets, metas, num_classes=self.num_classes, pos_weight=self.pos_weight
        )
        # 2019 normalisation: positives of each image, at least one per image.
        label_weights, box_weights = t.label_weights, t.box_weights
        positives = t.num_pos.clamp(min=1).to(label_weights.dtype)  # counted on the device
        if self.loss_normalizer == "batch":
            divisor = positives.sum()
        else:  # each image's anchors weighted by 1 / (its positives x images)
            scale = (1.0 / (positives * batch))[:, None]
            label_weights, box_weights = label_weights * scale, box_weights * scale[..., None]
            divisor = 1.0
        logits = flatten_levels(cls, self.num_classes).reshape(-1, self.num_classes)
        deltas = flatten_levels(reg, 4).reshape(-1, 4)
        return {
            "loss_cls": self.cls_loss(
                logits, t.labels.reshape(-1), label_weights.reshape(-1), divisor
            ),
            "loss_box": self.box_loss(
                deltas, t.box_targets.reshape(-1, 4), box_weights.reshape(-1, 4), divisor
            ),
        }

    def class_scores(self, logits: Tensor) -> Tensor:
        """Per-class sigmoid probabilities of Tensor[N, C] logits."""
        return logits.sigmoid()
