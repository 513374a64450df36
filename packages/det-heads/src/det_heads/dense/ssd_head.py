"""SSD head (Liu et al., 2016): one 3x3 conv per level for classes and one for boxes."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from det_heads.anchors import SSDAnchorGenerator
from det_heads.assigners import MaxIoUAssigner
from det_heads.coders import DeltaXYWHCoder
from det_heads.dense.anchor_targets import flatten_levels
from det_heads.dense.dense_head import AnchorDenseHead
from det_heads.inputs import check_features
from det_heads.losses import SmoothL1Loss, hard_negative_cross_entropy
from det_heads.postprocess import NMSConfig
from det_heads.samplers import PseudoSampler

# 2019 ssd300 test config: score 0.02, NMS 0.45, 200 detections.
SSD_NMS = NMSConfig(score_thr=0.02, iou_thr=0.45, max_per_img=200)


class SSDHead(AnchorDenseHead):
    """Softmax classification (C + 1 logits) and box deltas for every SSD anchor.

    Defaults follow the 2019 ssd300_coco config: VGG16 levels of (512, 1024, 512, 256, 256,
    256) channels, SSDAnchorGenerator(300), coder stds (0.1, 0.1, 0.2, 0.2), assigner 0.5 /
    0.5 / min_pos 0 without gt_max_assign_all, 3 hardest negatives per positive, smooth L1
    beta 1; test: every anchor, score 0.02, NMS 0.45, 200 detections.

    Args:
        num_classes: C, object classes; the head adds a background logit.
        in_channels: channels of each input level.
        anchor_generator, coder, assigner, box_loss: the parts.
        neg_pos_ratio: mined negatives per positive.
        allowed_border: see AnchorGenerator.valid_flags (-1, the 2019 config: every anchor).
        nms: test-time multiclass NMS.
    """

    name = "SSDHead"
    nms_pre = -1  # every anchor is a candidate
    candidates = "anchor"

    def __init__(
        self,
        num_classes: int,
        in_channels: Sequence[int] = (512, 1024, 512, 256, 256, 256),
        *,
        anchor_generator: SSDAnchorGenerator | None = None,
        coder: DeltaXYWHCoder | None = None,
        assigner: MaxIoUAssigner | None = None,
        box_loss: SmoothL1Loss | None = None,
        neg_pos_ratio: float = 3.0,
        allowed_border: float = -1,
        nms: NMSConfig = SSD_NMS,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"SSDHead: num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.anchor_generator = anchor_generator or SSDAnchorGenerator(300)
        if len(in_channels) != self.anchor_generator.num_levels:
            raise ValueError(
                f"SSDHead: in_channels has {len(in_channels)} levels, the anchor generator "
                f"{self.anchor_generator.num_levels}"
            )
        self.coder = coder or DeltaXYWHCoder(stds=(0.1, 0.1, 0.2, 0.2))
        self.assigner = assigner or MaxIoUAssigner(0.5, 0.5, 0.0, gt_max_assign_all=False)
        self.sampler = PseudoSampler()
        self.box_loss = box_loss or SmoothL1Loss(beta=1.0)
        self.neg_pos_ratio = neg_pos_ratio
        self.allowed_border = allowed_border
        self.nms = nms
        anchors = self.anchor_generator.num_anchors
        self.cls = nn.ModuleList(
            nn.Conv2d(c, a * (num_classes + 1), 3, padding=1)
            for c, a in zip(in_channels, anchors, strict=True)
        )
        self.reg = nn.ModuleList(
            nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(in_channels, anchors, strict=True)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level logits Tensor[B, A_l * (C + 1), H, W] and deltas Tensor[B, A_l * 4, H, W]."""
        check_features("SSDHead", feats, self.anchor_generator.num_levels)
        cls = [conv(f) for conv, f in zip(self.cls, feats, strict=True)]
        reg = [conv(f) for conv, f in zip(self.reg, feats, strict=True)]
        return cls, reg

    def _loss(self, outputs, feats, targets, metas) -> dict[str, Tensor]:
        """Hard-negative-mined cross entropy and smooth L1, normalised by the positives:
        dict(loss_cls, loss_box) scalar Tensors (see AnchorDenseHead.loss)."""
        cls, reg = outputs
        batch = feats[0].shape[0]
        t = self._targets(feats, targets, metas, num_classes=self.num_classes)
        num_pos = t.num_pos.clamp(min=1).sum().to(t.box_targets.dtype)  # on the device
        logits = flatten_levels(cls, self.num_classes + 1)
        deltas = flatten_levels(reg, 4)
        loss_cls = sum(
            hard_negative_cross_entropy(
                logits[i], t.labels[i], t.label_weights[i] > 0, self.neg_pos_ratio
            )
            for i in range(batch)
        )
        loss_box = self.box_loss(
            deltas.reshape(-1, 4),
            t.box_targets.reshape(-1, 4),
            t.box_weights.reshape(-1, 4),
            num_pos,
        )
        # Keeps the classifier in the graph when no image has a positive (no mined negatives).
        loss_cls = loss_cls / num_pos + 0 * logits.sum()
        return {"loss_cls": loss_cls, "loss_box": loss_box}

    def class_scores(self, logits: Tensor) -> Tensor:
        """Softmax probabilities of Tensor[N, C + 1] logits, the background's left out."""
        return logits.softmax(-1)[:, :-1]
