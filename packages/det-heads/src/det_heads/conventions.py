"""Box conventions: the arithmetic that differs between the code that trained a set of weights.

Weights trained by one code base give its detections only under its own box arithmetic. Three
conventions are in use here (docs/conventions.md lists each with the original's source):

- "det" (this project's default for training): widths x2 - x1, anchors centred on the cell
  corner with exact sizes, RoIAlign without the half-pixel shift (at least 1x1), decoded
  deltas clamped on both sides, NMS in input pixels, masks pasted by bilinear sampling.
- MMDET_V06 (the 2019 model zoo, mmdetection v0.6): widths x2 - x1 + 1 everywhere, anchors
  centred at ((base - 1) / 2) and rounded, RoIAlign ending at x2 + 1, the final NMS on boxes
  divided back to original pixels, masks pasted on integer boxes.
- TORCHVISION (torchvision's detection models): widths x2 - x1, anchors on the cell corner
  with rounded corners and strides from the padded size, deltas clamped from above only,
  RetinaNet candidates taken over (anchor, class) pairs, masks pasted on boxes grown by 1/14.
"""

from __future__ import annotations

from dataclasses import dataclass

ANCHOR_STYLES = ("det", "mmdet", "torchvision")
ROI_ALIGN_MODES = ("unaligned", "aligned", "legacy")
DELTA_CLAMPS = ("both", "max")
DENSE_CANDIDATES = ("anchor", "pair")
NMS_SPACES = ("input", "original")
MASK_PASTES = ("det", "mmdet", "torchvision")
MASK_TARGETS = ("det", "mmdet", "torchvision")


@dataclass(frozen=True)
class Conventions:
    """The box arithmetic of a model; every field is honoured by the heads that use it.

    Attributes:
        box_offset: 0 (widths x2 - x1) or 1 (x2 - x1 + 1): box coder, IoU in assigners and NMS,
            RoI level mapping, the RPN's minimum size.
        anchors: "det" (centre at the cell corner, exact sizes), "mmdet" (centre at
            ((base - 1) / 2), corners ctr -+ 0.5 (w - 1), rounded; SSD at ((stride - 1) / 2))
            or "torchvision" (corner, corners -+ w / 2 rounded, each level's stride the padded
            image size // its feature size).
        roi_align: "unaligned" (torchvision's aligned=False), "aligned" (half-pixel shift) or
            "legacy" (the 2019 kernel: RoI end + 1, size clamped at 0).
        delta_clamp: "both" (dw, dh clamped to +-log(1000 / 16)) or "max" (from above only).
        dense_candidates: how RetinaNet / SSD pick candidates before NMS: "anchor" (the
            nms_pre anchors of best class score per level, then the score threshold) or "pair"
            ((anchor, class) pairs above the threshold, the best nms_pre per level).
        nms_space: "input" (NMS on boxes in input pixels, then rescaled per axis) or
            "original" (boxes divided by the image's scale factor first, NMS after).
        mask_paste: "det" (bilinear samples of the map at pixel centres), "mmdet" (box
            truncated to integers, the map resized to (x2 - x1 + 1) x (y2 - y1 + 1)) or
            "torchvision" (box and map grown by one map pixel per side, then as mmdet).
        mask_targets: how a positive RoI's mask target is cut from its gt mask (training):
            "det" (aligned RoIAlign of the mask, >= 0.5), "mmdet" (the mask cropped at the
            RoI truncated to integers, (x2 - x1 + 1) x (y2 - y1 + 1), resized bilinearly,
            >= 0.5) or "torchvision" (unaligned RoIAlign of the mask, kept soft).
    """

    box_offset: int = 0
    anchors: str = "det"
    roi_align: str = "unaligned"
    delta_clamp: str = "both"
    dense_candidates: str = "anchor"
    nms_space: str = "input"
    mask_paste: str = "det"
    mask_targets: str = "det"

    def __post_init__(self) -> None:
        if isinstance(self.box_offset, bool) or self.box_offset not in (0, 1):
            raise ValueError(f"Conventions.box_offset must be 0 or 1, got {self.box_offset!r}")
        for name, choices in (
            ("anchors", ANCHOR_STYLES),
            ("roi_align", ROI_ALIGN_MODES),
            ("delta_clamp", DELTA_CLAMPS),
            ("dense_candidates", DENSE_CANDIDATES),
            ("nms_space", NMS_SPACES),
            ("mask_paste", MASK_PASTES),
            ("mask_targets", MASK_TARGETS),
        ):
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(
                    f"Conventions.{name} must be one of {', '.join(choices)}; got {value!r}"
                )

    @property
    def roi_align_aligned(self) -> bool | str:
        """The `aligned` argument of det_ops.roi_align for this convention."""
        return {"unaligned": False, "aligned": True, "legacy": "legacy"}[self.roi_align]


DET = Conventions()
MMDET_V06 = Conventions(
    box_offset=1,
    anchors="mmdet",
    roi_align="legacy",
    delta_clamp="both",
    dense_candidates="anchor",
    nms_space="original",
    mask_paste="mmdet",
    mask_targets="mmdet",
)
TORCHVISION = Conventions(
    box_offset=0,
    anchors="torchvision",
    roi_align="unaligned",
    delta_clamp="max",
    dense_candidates="pair",
    nms_space="input",
    mask_paste="torchvision",
    mask_targets="torchvision",
)
PRESETS = {"det": DET, "mmdet_v0.6": MMDET_V06, "torchvision": TORCHVISION}
