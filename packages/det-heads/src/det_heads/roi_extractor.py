"""Pooling of RoI features from the FPN level that matches each RoI's scale."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from det_heads import kernels
from det_heads.inputs import check_features
from det_heads.tracing import guard_or_false, guard_or_true
from det_ops.deform_roi_pool import LEGACY_SAMPLES_PER_BIN
from det_ops.modules import DeformRoIPoolPack, ModulatedDeformRoIPoolPack, RoIAlign, RoIPool

POOLS = ("align", "pool", "dpool", "mdpool")


def boxes_to_rois(boxes: Sequence[Tensor]) -> Tensor:
    """Per-image boxes -> Tensor[K, 5] rows (image index, x1, y1, x2, y2)."""
    rows = [
        torch.cat([b.new_full((b.shape[0], 1), float(i)), b[:, :4]], dim=1)
        for i, b in enumerate(boxes)
    ]
    return torch.cat(rows) if rows else torch.zeros(0, 5)


class RoIExtractor(nn.Module):
    """Multi-level RoI pooling (FPN paper, eq. 1, with the zoo's finest scale 56).

    A RoI of scale s = sqrt(w * h) (w = x2 - x1 + box_offset; the 2019 code's
    mmdet/models/roi_extractors/single_level.py map_roi_levels has box_offset 1) goes to
    level floor(log2(s / finest_scale + 1e-6)),
    clamped to the available levels: RoIs under 112 px to the finest level, 112..224 to the
    next, and so on.

    The deformable poolings (the zoo's "dpool" / "mdpool" rows) give each level its own
    offset MLP (and, for mdpool, mask MLP), as the 2019 configs' DeformRoIPoolingPack per
    stride: deform_fc_channels hidden units, offsets scaled by gamma of the RoI size;
    :meth:`legacy_deformable` builds the 2019 extractor.

    Args:
        strides: stride of each feature level (4, 8, 16, 32 for the zoo's R-CNN heads).
        output_size: pooled size (7 for box heads, 14 for mask heads).
        sampling_ratio: samples per bin side (2 in the zoo).
        pool: "align" (RoIAlign), "pool" (RoIPool), "dpool" (deformable RoI pooling, DCN v1)
            or "mdpool" (modulated deformable RoI pooling, DCN v2).
        finest_scale: the scale mapped to the finest level's upper bound / 2.
        aligned: RoIAlign's coordinates: False (torchvision's aligned=False), True (half-pixel
            shift) or "legacy" (the 2019 kernels: RoI end + 1); see det_ops.roi_align. The
            deformable poolings take True or "legacy" (det_ops.deform_roi_pool).
        box_offset: 0 or 1, added to widths and heights when mapping RoIs to levels.
        channels: channels of the feature maps (256 after the FPN); needed by "dpool" and
            "mdpool", whose MLPs read the pooled features.
        deform_fc_channels: hidden width of the offset (and mask) MLPs.
        gamma: offset scale relative to the RoI size.
    """

    def __init__(
        self,
        strides: Sequence[int] = (4, 8, 16, 32),
        output_size: int = 7,
        sampling_ratio: int = 2,
        pool: str = "align",
        *,
        finest_scale: float = 56.0,
        aligned: bool | str = False,
        box_offset: int = 0,
        channels: int | None = None,
        deform_fc_channels: int = 1024,
        gamma: float = 0.1,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"RoIExtractor: pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if isinstance(box_offset, bool) or box_offset not in (0, 1):
            raise ValueError(f"RoIExtractor: box_offset must be 0 or 1, got {box_offset!r}")
        if pool in ("dpool", "mdpool") and channels is None:
            raise ValueError(
                f"RoIExtractor: pool {pool!r} needs channels, the feature maps' channels "
                "(its offset MLPs read the pooled features)"
            )
        self.box_offset = int(box_offset)
        self.strides = tuple(strides)
        self.output_size = output_size
        self.finest_scale = finest_scale
        self.pool = pool
        if pool == "align":
            layers = [RoIAlign(output_size, 1 / s, sampling_ratio, aligned) for s in strides]
        elif pool == "pool":
            layers = [RoIPool(output_size, 1 / s) for s in strides]
        else:
            pack = DeformRoIPoolPack if pool == "dpool" else ModulatedDeformRoIPoolPack
            layers = [
                pack(
                    output_size,
                    channels,
                    deform_fc_channels,
                    1 / s,
                    sampling_ratio,
                    gamma,
                    aligned,
                )
                for s in strides
            ]
        self.layers = nn.ModuleList(layers)

    @classmethod
    def legacy_deformable(
        cls,
        channels: int,
        pool: str = "dpool",
        strides: Sequence[int] = (4, 8, 16, 32),
        output_size: int = 7,
        *,
        box_offset: int = 1,
    ) -> RoIExtractor:
        """The 2019 deformable extractor ("dpool" or "mdpool"): its kernel, with
        DeformRoIPoolingPack's 4 points per bin side (sample_per_part) and trans_std 0.1
        (mmdet v0.6 configs/dcn/*dpool*)."""
        if pool not in ("dpool", "mdpool"):
            raise ValueError(
                f"RoIExtractor.legacy_deformable: pool must be 'dpool' or 'mdpool', got {pool!r}"
            )
        return cls(
            strides,
            output_size,
            LEGACY_SAMPLES_PER_BIN,
            pool,
            aligned="legacy",
            box_offset=box_offset,
            channels=channels,
        )

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    def map_levels(self, rois: Tensor) -> Tensor:
        """int64 Tensor[K]: the level of each RoI (Tensor[K, 5])."""
        w = (rois[:, 3] - rois[:, 1] + self.box_offset).clamp(min=0)
        h = (rois[:, 4] - rois[:, 2] + self.box_offset).clamp(min=0)
        scale = torch.sqrt(w * h)
        levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return levels.clamp(0, self.num_levels - 1).long()

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Pooled features of rois.

        Args:
            feats: num_levels Tensor[B, C, H_l, W_l], finest first (extra levels beyond
                num_levels, such as the RPN's P6, may follow and are not used).
            rois: Tensor[K, 5] (image index, x1, y1, x2, y2), input pixels.

        Returns:
            Tensor[K, C, output_size, output_size].
        """
        if len(feats) < self.num_levels:
            check_features("RoIExtractor", feats, self.num_levels)
        feats = list(feats[: self.num_levels])
        c = feats[0].shape[1]
        out = feats[0].new_zeros(rois.shape[0], c, self.output_size, self.output_size)
        # guard_or_*: an exported graph cannot branch on RoI counts it only knows when it
        # runs; it takes the general path, which is right for any count.
        if guard_or_false(rois.shape[0] == 0):
            # Keeps the features in the graph so that an empty batch still has gradients.
            return out + 0 * sum(f.sum() for f in feats)
        levels = self.map_levels(rois)
        if self.pool == "align":
            # Every level in one call: no per-level selection of RoIs, which would make the
            # step wait for the device to count them.
            first = self.layers[0]
            return kernels.multi_level_roi_align(
                feats,
                rois,
                levels,
                first.output_size,
                [layer.spatial_scale for layer in self.layers],
                first.sampling_ratio,
                first.aligned,
            )
        for level, (feat, layer) in enumerate(zip(feats, self.layers, strict=True)):
            inds = (levels == level).nonzero().flatten()
            if guard_or_true(inds.numel() > 0):
                out[inds] = self._pool(layer, feat, rois[inds].to(feat.dtype))
            else:
                out = out + 0 * feat.sum()
        return out

    @staticmethod
    def _pool(layer: nn.Module, feat: Tensor, rois: Tensor) -> Tensor:
        if isinstance(layer, RoIAlign):  # the kernel itself, which torch.export can trace
            return kernels.roi_align(
                feat,
                rois,
                layer.output_size,
                layer.spatial_scale,
                layer.sampling_ratio,
                layer.aligned,
            )
        return layer(feat, rois)

    def extra_repr(self) -> str:
        return (
            f"pool={self.pool!r}, strides={self.strides}, output_size={self.output_size}, "
            f"finest_scale={self.finest_scale}"
        )
