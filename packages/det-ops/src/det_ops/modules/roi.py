"""RoI feature extractors as modules."""

from __future__ import annotations

from torch import Tensor, nn

from det_ops.roi_align import roi_align
from det_ops.roi_pool import roi_pool


class RoIAlign(nn.Module):
    """RoIAlign with fixed output size, scale and sampling (see det_ops.roi_align).

    The arguments and defaults of ``torchvision.ops.RoIAlign`` (aligned=False), which
    needs spatial_scale and sampling_ratio where this module defaults them to 1.0 and -1.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float = 1.0,
        sampling_ratio: int = -1,
        aligned: bool | str = False,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        """input Tensor[B, C, H, W], rois Tensor[K, 5] or a list of Tensor[L_i, 4] (one
        per image) -> Tensor[K, C, out_h, out_w]."""
        return roi_align(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class RoIPool(nn.Module):
    """RoIPool with fixed output size and scale (see det_ops.roi_pool)."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        """input Tensor[B, C, H, W], rois Tensor[K, 5] or a list of Tensor[L_i, 4] (one
        per image) -> Tensor[K, C, out_h, out_w]."""
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
