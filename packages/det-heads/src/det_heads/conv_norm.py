"""Convs with an optional GroupNorm: the layers of the zoo's GN FPN, box head and mask head.

The 2019 GN configs put GroupNorm (32 groups) after every conv of the FPN, of a box head with
four shared convs and one FC ("4conv1fc"), and of the mask head; those convs have no bias.
FPN, BBoxHead and MaskHead take ``norm=None`` (plain convs with a bias) or ``norm="GN"``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from det_heads.tracing import is_exporting

GN_GROUPS = 32
NORMS = (None, "GN")


def check_norm(op: str, norm: str | None) -> None:
    """Raises ValueError unless norm is one of NORMS."""
    if norm not in NORMS:
        raise ValueError(f"{op}: norm must be None or 'GN', got {norm!r}")


class RoIGroupNorm(nn.GroupNorm):
    """GroupNorm for RoI features: hundreds of small maps (7x7 box, 14x14 mask features).

    On the CPU, PyTorch's channels-last GroupNorm kernel is slow on such batches in bfloat16
    or with fewer than 4 channels per group: for 512 RoIs of 32 channels at 7x7, forward and
    backward take 7x longer in bf16 and 2.5x longer in fp32 than in the contiguous layout
    (BENCHMARKS.md, ``python -m det_heads.bench``). Such inputs are normalised in the
    contiguous layout; the next conv accepts either layout. The values are those of
    nn.GroupNorm.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[K, C, H, W] -> Tensor[K, C, H, W]."""
        if is_exporting():
            # The layout test and F.group_norm's size check read K, which an exported graph
            # only knows when it runs.
            return torch.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        if (
            x.device.type == "cpu"
            and not x.is_contiguous()
            and (x.dtype != torch.float32 or self.num_channels // self.num_groups < 4)
        ):
            x = x.contiguous()
        return super().forward(x)


class ConvGN(nn.Module):
    """A bias-free conv followed by GroupNorm (no activation), Kaiming-initialised.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: 1 or 3 (padding keeps the size).
        groups: GroupNorm groups.
        roi_features: the input is a batch of RoI features (uses :class:`RoIGroupNorm`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        groups: int = GN_GROUPS,
        *,
        roi_features: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.gn = (RoIGroupNorm if roi_features else nn.GroupNorm)(groups, out_channels)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> Tensor[B, C_out, H, W]."""
        return self.gn(self.conv(x))


def conv_with_norm(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    norm: str | None,
    *,
    roi_features: bool = False,
) -> nn.Conv2d | ConvGN:
    """A conv whose padding keeps the size: nn.Conv2d with a bias (norm None, initialised by
    its caller) or :class:`ConvGN` (norm "GN"; roi_features as ConvGN's)."""
    if norm == "GN":
        return ConvGN(in_channels, out_channels, kernel_size, roi_features=roi_features)
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
