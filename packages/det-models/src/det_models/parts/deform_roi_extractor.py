"""Multi-level RoI extraction with deformable RoI pooling (the zoo's "dpool" / "mdpool" rows)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from det_heads import RoIExtractor
from det_ops.deform_roi_pool import LEGACY_SAMPLES_PER_BIN
from det_ops.modules import DeformRoIPoolPack, ModulatedDeformRoIPoolPack

KINDS = ("dpool", "mdpool")


class DeformRoIExtractor(RoIExtractor):
    """RoIExtractor whose per-level pooling predicts bin offsets (and, for mdpool, bin masks).

    Each level has its own offset MLP, as in the 2019 configs (DeformRoIPoolingPack per
    stride, 1024 hidden units, offsets scaled by gamma = 0.1 of the RoI size).
    aligned="legacy" pools as the 2019 kernel did, both for the offset MLP's input and
    with the offsets (det_ops.deform_roi_pool); DeformRoIExtractor.legacy builds the 2019
    extractor.

    Args:
        channels: channels of the feature maps (256 after the FPN).
        kind: "dpool" (DCN v1 pooling) or "mdpool" (modulated, DCN v2).
        strides: stride of each feature level.
        output_size: pooled size.
        sampling_ratio: samples per bin side.
        deform_fc_channels: hidden width of the offset (and mask) MLPs.
        gamma: offset scale relative to the RoI size.
        box_offset: 0 or 1 (the 2019 +1 widths) when mapping RoIs to levels.
        aligned: True (RoIAlign's half-pixel geometry) or "legacy" (the 2019 kernel).
    """

    def __init__(
        self,
        channels: int,
        kind: str = "dpool",
        strides: Sequence[int] = (4, 8, 16, 32),
        output_size: int = 7,
        sampling_ratio: int = 2,
        *,
        deform_fc_channels: int = 1024,
        gamma: float = 0.1,
        box_offset: int = 0,
        aligned: bool | str = True,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"DeformRoIExtractor: kind must be one of {KINDS}, got {kind!r}")
        super().__init__(strides, output_size, sampling_ratio, "align", box_offset=box_offset)
        pack = DeformRoIPoolPack if kind == "dpool" else ModulatedDeformRoIPoolPack
        self.kind = kind
        self.aligned = aligned
        self.layers = nn.ModuleList(
            pack(output_size, channels, deform_fc_channels, 1 / s, sampling_ratio, gamma, aligned)
            for s in strides
        )

    @classmethod
    def legacy(
        cls,
        channels: int,
        kind: str = "dpool",
        strides: Sequence[int] = (4, 8, 16, 32),
        output_size: int = 7,
        *,
        box_offset: int = 1,
    ) -> DeformRoIExtractor:
        """The 2019 extractor: its kernel, with DeformRoIPoolingPack's 4 points per bin side
        (sample_per_part) and trans_std 0.1 (mmdet v0.6 configs/dcn/*dpool*)."""
        return cls(
            channels,
            kind,
            strides,
            output_size,
            LEGACY_SAMPLES_PER_BIN,
            box_offset=box_offset,
            aligned="legacy",
        )
