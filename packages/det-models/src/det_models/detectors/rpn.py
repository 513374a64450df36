"""Region Proposal Network as a detector: class-agnostic proposals."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from det_heads import RPNHead
from det_models.detectors.inputs import check_batch


class RPN(nn.Module):
    """Backbone, neck and RPN head; eval returns proposals in original-image pixels.

    Args:
        backbone: returns a list of maps and has out_channels and strides.
        neck: maps the backbone's list to the pyramid the head reads (FPN).
        rpn: the RPNHead.
    """

    def __init__(self, *, backbone: nn.Module, neck: nn.Module, rpn: RPNHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.rpn = rpn

    def forward(
        self, images: Tensor, metas: Sequence[dict], targets: Sequence[dict] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses in train mode, proposals in eval mode.

        Args:
            images: Tensor[B, 3, H, W], normalised and padded.
            metas: per image dict(img_shape, scale_factor, ori_shape, ...).
            targets: per image dict(boxes Tensor[G, 4] (x1, y1, x2, y2, input pixels),
                labels int64[G]); train mode only.

        Returns:
            Train: dict(loss_rpn_cls, loss_rpn_box). Eval: per image dict(boxes Tensor[K, 4]
            (x1, y1, x2, y2, original-image pixels), scores Tensor[K]).
        """
        check_batch("RPN", images, metas, targets, self.training)
        feats = self.neck(self.backbone(images))
        if self.training:
            return self.rpn.loss(feats, targets, metas, check_inputs=False)
        return self.rpn.predict(feats, metas, rescale=True, check_inputs=False)
