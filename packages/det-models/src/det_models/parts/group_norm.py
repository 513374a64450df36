"""The GroupNorm versions of the FPN, box head and mask head (the zoo's "gn" Mask R-CNN rows).

The 2019 GN configs put GroupNorm (32 groups) after every conv of the FPN, of a box head with
four shared convs and one FC ("4conv1fc"), and of the mask head; those convs have no bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_heads import FPN, BBoxHead, MaskHead
from det_heads.tracing import is_exporting

GN_GROUPS = 32


class RoIGroupNorm(nn.GroupNorm):
    """GroupNorm for RoI features: hundreds of small maps (7x7 box, 14x14 mask features).

    On the CPU, PyTorch's channels-last GroupNorm kernel is slow on such batches in bfloat16
    or with fewer than 4 channels per group: for 512 RoIs of 32 channels at 7x7, forward and
    backward take 7x longer in bf16 and 2.5x longer in fp32 than in the contiguous layout
    (BENCHMARKS.md). Such inputs are normalised in the contiguous layout; the next conv
    accepts either layout. The values are those of nn.GroupNorm.
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
    """A bias-free conv followed by GroupNorm (no activation).

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


class GroupNormFPN(FPN):
    """FPN whose lateral and output convs are ConvGN (max-pool extra levels only).

    Args:
        in_channels, out_channels, num_outs: as det_heads.FPN.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, num_outs: int = 5):
        super().__init__(in_channels, out_channels, num_outs, "maxpool")
        self.lateral_convs = nn.ModuleList(ConvGN(c, out_channels, 1) for c in in_channels)
        self.output_convs = nn.ModuleList(
            ConvGN(out_channels, out_channels, 3) for _ in in_channels
        )


class ConvFCBBoxHead(BBoxHead):
    """Box head with shared 3x3 ConvGN + ReLU layers before its FCs ("4conv1fc" with GN).

    Args:
        num_classes: C, object classes.
        in_channels: channels of the pooled features.
        roi_size: side of the pooled features.
        conv_channels: channels of the shared convs.
        num_convs: number of shared convs.
        fc_channels, num_fcs: the FCs after the convs (1 x 1024 in the zoo).
        kwargs: class_agnostic, coder, cls_loss, box_loss of BBoxHead.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        roi_size: int = 7,
        conv_channels: int = 256,
        num_convs: int = 4,
        fc_channels: int = 1024,
        num_fcs: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(
            num_classes,
            conv_channels if num_convs else in_channels,
            roi_size,
            fc_channels,
            num_fcs,
            **kwargs,
        )
        self.convs = nn.ModuleList(
            ConvGN(in_channels if i == 0 else conv_channels, conv_channels, 3, roi_features=True)
            for i in range(num_convs)
        )

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        """Tensor[K, C_in, S, S] -> (logits Tensor[K, C + 1], deltas Tensor[K, 4 or 4 C])."""
        x = roi_feats
        for conv in self.convs:
            x = F.relu(conv(x))
        return super().forward(x)


class GroupNormMaskHead(MaskHead):
    """MaskHead whose 3x3 convs are ConvGN (MaskHead.forward applies the ReLU).

    Args:
        num_classes, in_channels, conv_channels, num_convs: as det_heads.MaskHead.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        conv_channels: int = 256,
        num_convs: int = 4,
        *,
        class_agnostic: bool = False,
    ) -> None:
        super().__init__(
            num_classes, in_channels, conv_channels, num_convs, class_agnostic=class_agnostic
        )
        self.convs = nn.ModuleList(
            ConvGN(in_channels if i == 0 else conv_channels, conv_channels, 3, roi_features=True)
            for i in range(num_convs)
        )
