"""Deformable RoI pooling as modules: with given offsets, or predicting them (Pack)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from det_ops._checks import pair
from det_ops.deform_roi_pool import (
    deform_aligned_mode,
    deform_roi_pool,
    modulated_deform_roi_pool,
)


class DeformRoIPool(nn.Module):
    """Deformable RoI pooling with fixed output size, scale, sampling, gamma and geometry.

    See det_ops.deform_roi_pool; the offsets are given to forward. aligned="legacy" is the
    2019 mmdetection kernel (sampling_ratio: its sample_per_part, 4 in its configs).
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        gamma: float = 0.1,
        aligned: bool | str = True,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.output_size = pair(name, "output_size", output_size)
        deform_aligned_mode(name, aligned)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.gamma = gamma
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor, offset: Tensor | None = None) -> Tensor:
        """Pools the RoIs, each bin shifted by its offset.

        Args:
            input: Tensor[B, C, H, W]; rois: Tensor[K, 5];
            offset: Tensor[K, 2, out_h, out_w] (x, y) or None.

        Returns:
            Tensor[K, C, out_h, out_w].
        """
        return deform_roi_pool(
            input,
            rois,
            offset,
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.gamma,
            self.aligned,
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, gamma={self.gamma}, aligned={self.aligned!r}"
        )


def _mlp(in_features: int, hidden: int, out_features: int, layers: int) -> nn.Sequential:
    """Linear-ReLU stack whose last Linear starts at zero (so it first predicts 0)."""
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    last = nn.Linear(width, out_features)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*modules, last)


class DeformRoIPoolPack(DeformRoIPool):
    """Deformable RoI pooling that predicts its own offsets (DCN v1).

    Pools each RoI once without offsets, feeds the pooled features to an MLP
    (three Linear layers, ReLU between them) that predicts the offsets, and
    pools again with them. The last layer starts at zero, so a fresh module
    equals roi_align(aligned=True). With aligned="legacy" both poolings are the
    2019 kernel's, as in its DeformRoIPoolingPack.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        output_channels: int,
        deform_fc_channels: int = 1024,
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        gamma: float = 0.1,
        aligned: bool | str = True,
    ) -> None:
        super().__init__(output_size, spatial_scale, sampling_ratio, gamma, aligned)
        self.output_channels = output_channels
        self.deform_fc_channels = deform_fc_channels
        out_h, out_w = self.output_size
        self.offset_fc = _mlp(
            out_h * out_w * output_channels, deform_fc_channels, out_h * out_w * 2, layers=3
        )

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        """Pools the RoIs with predicted offsets.

        Args:
            input: Tensor[B, output_channels, H, W]; rois: Tensor[K, 5].

        Returns:
            Tensor[K, output_channels, out_h, out_w].
        """
        self._check_channels(input)
        out_h, out_w = self.output_size
        pooled = super().forward(input, rois)
        offset = self.offset_fc(pooled.flatten(1)).view(-1, 2, out_h, out_w)
        return super().forward(input, rois, offset)

    def _check_channels(self, input: Tensor) -> None:
        if input.dim() != 4 or input.shape[1] != self.output_channels:
            raise ValueError(
                f"{type(self).__name__}: input must have shape [B, {self.output_channels}, H, W] "
                f"(output_channels), got {list(input.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, output_channels={self.output_channels}, "
            f"deform_fc_channels={self.deform_fc_channels}"
        )


class ModulatedDeformRoIPoolPack(DeformRoIPoolPack):
    """Deformable RoI pooling that predicts its offsets and bin masks (DCN v2).

    As DeformRoIPoolPack, plus a second MLP (two Linear layers, ReLU between,
    sigmoid after) on the offset-free pooled features that predicts one mask
    value per bin. Its last layer starts at zero, so a fresh module gives
    0.5 * roi_align(aligned=True). With aligned="legacy" both poolings are the
    2019 kernel's, as in its ModulatedDeformRoIPoolingPack.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        output_channels: int,
        deform_fc_channels: int = 1024,
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        gamma: float = 0.1,
        aligned: bool | str = True,
    ) -> None:
        super().__init__(
            output_size,
            output_channels,
            deform_fc_channels,
            spatial_scale,
            sampling_ratio,
            gamma,
            aligned,
        )
        out_h, out_w = self.output_size
        self.mask_fc = _mlp(
            out_h * out_w * output_channels, deform_fc_channels, out_h * out_w, layers=2
        )

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        """Pools the RoIs with predicted offsets, each bin scaled by its predicted mask.

        Args:
            input: Tensor[B, output_channels, H, W]; rois: Tensor[K, 5].

        Returns:
            Tensor[K, output_channels, out_h, out_w].
        """
        self._check_channels(input)
        out_h, out_w = self.output_size
        pooled = deform_roi_pool(
            input,
            rois,
            None,
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.gamma,
            self.aligned,
        ).flatten(1)
        offset = self.offset_fc(pooled).view(-1, 2, out_h, out_w)
        mask = torch.sigmoid(self.mask_fc(pooled)).view(-1, 1, out_h, out_w)
        return modulated_deform_roi_pool(
            input,
            rois,
            offset,
            mask,
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.gamma,
            self.aligned,
        )
