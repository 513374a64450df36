"""Deformable convolution layers (DCN v1 and modulated DCN v2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from det_ops.deform_conv import deform_conv2d


class DeformConv2d(nn.Module):
    """Deformable convolution with its offsets (and, for DCN v2, its mask) given to forward.

    The arguments of ``torchvision.ops.DeformConv2d`` in its order, and the same
    parameters (``weight``, ``bias``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
        bias: as nn.Conv2d (same parameter shapes and initialisation).
        deform_groups: offset groups G; each moves the taps of C_in / G input channels.
            forward takes G from the offset's shape; this one sizes the inner offset
            conv of the Pack layers.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        deform_groups: int = 1,
    ) -> None:
        super().__init__()
        for name, value, divisor_name, divisor in (
            ("in_channels", in_channels, "groups", groups),
            ("out_channels", out_channels, "groups", groups),
            ("in_channels", in_channels, "deform_groups", deform_groups),
        ):
            if divisor < 1 or value % divisor != 0:
                raise ValueError(
                    f"{type(self).__name__}: {name} ({value}) must be divisible by "
                    f"{divisor_name} ({divisor})"
                )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's initialisation."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def offset_channels(self) -> int:
        return 2 * self.deform_groups * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, input: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        """input Tensor[B, C_in, H, W], offset Tensor[B, 2 * G * kh * kw, H_out, W_out],
        mask None (DCN v1) or Tensor[B, G * kh * kw, H_out, W_out] (DCN v2)
        -> Tensor[B, C_out, H_out, W_out]."""
        return deform_conv2d(
            input,
            offset,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, deform_groups={self.deform_groups}, "
            f"bias={self.bias is not None}"
        )


class ModulatedDeformConv2d(DeformConv2d):
    """Modulated deformable convolution (DCN v2) with offsets and mask given to forward."""

    def forward(self, input: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        """input Tensor[B, C_in, H, W], offset Tensor[B, 2 * G * kh * kw, H_out, W_out],
        mask Tensor[B, G * kh * kw, H_out, W_out] -> Tensor[B, C_out, H_out, W_out]."""
        return super().forward(input, offset, mask)


def _zero_conv(layer: DeformConv2d, out_channels: int) -> nn.Conv2d:
    """The offset predictor: a conv with the layer's geometry, weight and bias zero."""
    conv = nn.Conv2d(
        layer.in_channels,
        out_channels,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
        bias=True,
    )
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class DeformConv2dPack(DeformConv2d):
    """DCN v1 that predicts its own offsets with an inner conv (`conv_offset`).

    conv_offset starts at zero, so the layer starts as a plain convolution.
    Same arguments as DeformConv2d.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_offset = _zero_conv(self, self.offset_channels)

    def forward(self, input: Tensor) -> Tensor:
        """input Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]."""
        return super().forward(input, self.conv_offset(input))


class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    """DCN v2 that predicts its own offsets and mask with an inner conv (`conv_offset`).

    conv_offset gives 3 * G * kh * kw channels: the offsets (the first two thirds,
    laid out as deform_conv2d's offset) and the mask logits (mask = sigmoid).
    It starts at zero, so the layer starts as a plain convolution whose samples
    are scaled by sigmoid(0) = 0.5 (the DCN v2 / mmcv convention, which keeps
    mmdetection checkpoints interchangeable). Same arguments as DeformConv2d.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_offset = _zero_conv(self, self.offset_channels * 3 // 2)

    def forward(self, input: Tensor) -> Tensor:
        """input Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]."""
        predicted = self.conv_offset(input)
        offset, logits = predicted.split([self.offset_channels, self.offset_channels // 2], 1)
        return super().forward(input, offset, torch.sigmoid(logits))
