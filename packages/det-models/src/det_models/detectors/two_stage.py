"""Two-stage detectors: Fast, Faster, Mask and Cascade (Mask) R-CNN."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from det_heads import CascadeRoIHead, RPNHead, StandardRoIHead
from det_heads.inputs import check_proposals
from det_models.detectors.inputs import check_batch


class FasterRCNN(nn.Module):
    """Backbone, FPN, RPN, RoI head (Ren et al., 2015; FPN by Lin et al., 2017).

    Args:
        backbone: returns a list of maps and has out_channels and strides.
        neck: the FPN.
        rpn: the RPNHead that proposes boxes.
        roi_head: a StandardRoIHead (or CascadeRoIHead) that classifies and refines them.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        neck: nn.Module,
        rpn: RPNHead,
        roi_head: StandardRoIHead | CascadeRoIHead,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.rpn = rpn
        self.roi_head = roi_head

    @property
    def num_classes(self) -> int:
        return self.roi_head.num_classes

    def forward(
        self, images: Tensor, metas: Sequence[dict], targets: Sequence[dict] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses in train mode, detections in eval mode.

        Args:
            images: Tensor[B, 3, H, W], normalised and padded.
            metas: per image dict(img_shape, scale_factor, ori_shape, ...).
            targets: per image dict(boxes Tensor[G, 4] (x1, y1, x2, y2, input pixels),
                labels int64[G] in 0..C-1[, masks][, ignore_boxes]); train mode only.

        Returns:
            Train: dict of losses (loss_rpn_cls, loss_rpn_box and the RoI head's).
            Eval: per image dict(boxes Tensor[N, 4] (x1, y1, x2, y2, original-image pixels),
            scores Tensor[N], labels int64[N][, masks uint8 Tensor[N, H_ori, W_ori]]).
        """
        check_batch(type(self).__name__, images, metas, targets, self.training, self.num_classes)
        feats = self.neck(self.backbone(images))
        # The batch was checked above: the heads trust it, and the RoI head the RPN's proposals.
        if self.training:
            rpn_losses, proposals = self.rpn.loss_and_predict(
                feats, targets, metas, check_inputs=False
            )
            roi_losses = self.roi_head.loss(feats, proposals, targets, metas, check_inputs=False)
            return {**rpn_losses, **roi_losses}
        # Padded proposals: the device is waited for once, for the final detections.
        proposals = self.rpn.predict(feats, metas, check_inputs=False, padded=True)
        return self.roi_head.predict(feats, proposals, metas, check_inputs=False)

    def padded_detections(
        self, images: Tensor, metas: Sequence[dict]
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        """The eval forward up to its one host read (what det_models.GraphedDetector
        captures): StandardRoIHead.padded_predict of the RPN's padded proposals, detections
        at fixed sizes in input pixels; det_heads' compact_detections finishes them as the
        eval forward does. Faster and Mask R-CNN with hard NMS (a StandardRoIHead).
        """
        if not isinstance(self.roi_head, StandardRoIHead):
            raise TypeError(
                f"{type(self).__name__}.padded_detections needs a StandardRoIHead, got "
                f"{type(self.roi_head).__name__}"
            )
        check_batch(type(self).__name__, images, metas, None, False, self.num_classes)
        feats = self.neck(self.backbone(images))
        proposals = self.rpn.predict(feats, metas, check_inputs=False, padded=True)
        return self.roi_head.padded_predict(feats, proposals, metas)


class MaskRCNN(FasterRCNN):
    """Faster R-CNN whose RoI head also predicts masks (He et al., 2017)."""

    def __init__(
        self, *, backbone: nn.Module, neck: nn.Module, rpn: RPNHead, roi_head: StandardRoIHead
    ) -> None:
        if getattr(roi_head, "mask_head", None) is None:
            raise ValueError("MaskRCNN: roi_head must have a mask_head (use FasterRCNN without)")
        super().__init__(backbone=backbone, neck=neck, rpn=rpn, roi_head=roi_head)


class CascadeRCNN(FasterRCNN):
    """Faster R-CNN with a CascadeRoIHead (Cai & Vasconcelos, 2018), with or without masks."""

    def __init__(
        self, *, backbone: nn.Module, neck: nn.Module, rpn: RPNHead, roi_head: CascadeRoIHead
    ) -> None:
        if not isinstance(roi_head, CascadeRoIHead):
            raise TypeError(
                f"CascadeRCNN: roi_head must be a CascadeRoIHead, got {type(roi_head).__name__}"
            )
        super().__init__(backbone=backbone, neck=neck, rpn=rpn, roi_head=roi_head)

    @property
    def with_masks(self) -> bool:
        return self.roi_head.mask_heads is not None


class FastRCNN(nn.Module):
    """Backbone, FPN and RoI head on precomputed proposals (Girshick, 2015).

    The proposals come as the ``proposals`` argument, or else from each target's
    ``"proposals"`` (what a dataset built with a proposals file yields, already resized
    with the image).

    Args:
        backbone: returns a list of maps and has out_channels and strides.
        neck: the FPN.
        roi_head: a StandardRoIHead (with or without masks).
    """

    # Evaluation loops pass the targets' proposals to detectors that say they need them.
    needs_proposals = True

    def __init__(self, *, backbone: nn.Module, neck: nn.Module, roi_head: StandardRoIHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.roi_head = roi_head

    @property
    def num_classes(self) -> int:
        return self.roi_head.num_classes

    def forward(
        self,
        images: Tensor,
        metas: Sequence[dict],
        targets: Sequence[dict] | None = None,
        *,
        proposals: Sequence[Tensor | dict] | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses in train mode, detections in eval mode, from the given proposals.

        Args:
            images: Tensor[B, 3, H, W], normalised and padded.
            metas: per image dict(img_shape, scale_factor, ori_shape, ...).
            targets: per image dict(boxes, labels[, masks]); train mode only.
            proposals: per image Tensor[K, 4] (or dict with boxes), (x1, y1, x2, y2) in input
                pixels, i.e. already scaled by the image's scale_factor; None: each
                target's "proposals".

        Returns:
            Train: dict(loss_cls, loss_box[, loss_mask]). Eval: as FasterRCNN.forward.
        """
        check_batch("FastRCNN", images, metas, targets, self.training, self.num_classes)
        if proposals is None:
            if targets is None or any("proposals" not in t for t in targets):
                raise ValueError(
                    "FastRCNN: no proposals; pass proposals=, or targets from a dataset built "
                    "with a proposals file"
                )
            proposals = [t["proposals"][:, :4] for t in targets]
        offset = self.roi_head.conventions.box_offset
        check_proposals("FastRCNN", proposals, images.shape[0], offset)
        feats = self.neck(self.backbone(images))
        if self.training:
            return self.roi_head.loss(feats, proposals, targets, metas, check_inputs=False)
        return self.roi_head.predict(feats, proposals, metas, check_inputs=False)
