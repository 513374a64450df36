"""Single-stage detectors: RetinaNet and SSD (one dense head on the feature maps)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from det_heads import RetinaHead, SSDHead
from det_models.detectors.inputs import check_batch


class SingleStageDetector(nn.Module):
    """Backbone, optional neck, dense head.

    Args:
        backbone: returns a list of maps and has out_channels and strides.
        neck: maps the backbone's list to the levels the head reads, or None.
        head: a dense head with loss(feats, targets, metas) and predict(feats, metas).
    """

    def __init__(
        self, *, backbone: nn.Module, neck: nn.Module | None, head: RetinaHead | SSDHead
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck if neck is not None else nn.Identity()
        self.head = head

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def forward(
        self, images: Tensor, metas: Sequence[dict], targets: Sequence[dict] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses in train mode, detections in eval mode.

        Args:
            images: Tensor[B, 3, H, W], normalised (and padded).
            metas: per image dict(img_shape, scale_factor, ori_shape, ...).
            targets: per image dict(boxes Tensor[G, 4] (x1, y1, x2, y2, input pixels),
                labels int64[G] in 0..C-1); train mode only.

        Returns:
            Train: dict(loss_cls, loss_box). Eval: per image dict(boxes Tensor[N, 4]
            (x1, y1, x2, y2, original-image pixels), scores Tensor[N], labels int64[N]).
        """
        check_batch(type(self).__name__, images, metas, targets, self.training, self.num_classes)
        feats = self.neck(self.backbone(images))
        if self.training:
            return self.head.loss(feats, targets, metas, check_inputs=False)
        return self.head.predict(feats, metas, check_inputs=False)


class RetinaNet(SingleStageDetector):
    """RetinaNet (Lin et al., 2017): ResNet, FPN from C3 with P6/P7 convs, focal-loss head."""


class SSD(SingleStageDetector):
    """SSD (Liu et al., 2016): VGG16 source maps straight into the SSD head (no neck)."""

    def __init__(self, *, backbone: nn.Module, head: SSDHead) -> None:
        super().__init__(backbone=backbone, neck=None, head=head)
