"""VGG16 backbone of SSD300 / SSD512 (atrous fc6/fc7, L2-normalised conv4_3, extra layers).

`features` keeps torchvision's vgg16 indices for conv1_1..conv5_3 (features.0 .. features.28),
so torchvision's `features.*` weights load key for key; pool5 (features.30) becomes 3x3 with
stride 1, and the convolutional fc6 (features.31, 3x3, dilation 6) and fc7 (features.33, 1x1)
follow, as in the SSD paper and mmdetection's SSDVGG. `extra` and `l2_norm` keep
mmdetection's names too.

Beyond the zoo's network, `base_channels` scales every layer's width (64: VGG16; 16: a
quarter-width SSD that trains on a CPU) and `norm="BN"` puts a BatchNorm after every conv,
which lets SSD train from scratch without ImageNet weights (as in ScratchDet). With BN the
`features` indices are those of torchvision's vgg16_bn, and each extra layer is a
(conv, BN) pair.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INPUT_SIZES = (300, 512)
# VGG16 configuration D: channels of each conv, "M" a 2x2 max-pool.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# conv4_3 is the 10th conv of VGG16: the output of its ReLU is the first source map.
CONV4_3 = 10
# (out_channels, kernel, stride, padding) of each extra conv; a ReLU follows each, and the
# output of every second one is a source map.
EXTRA_LAYERS = {
    300: ((256, 1, 1, 0), (512, 3, 2, 1), (128, 1, 1, 0), (256, 3, 2, 1),
          (128, 1, 1, 0), (256, 3, 1, 0), (128, 1, 1, 0), (256, 3, 1, 0)),
    512: ((256, 1, 1, 0), (512, 3, 2, 1), (128, 1, 1, 0), (256, 3, 2, 1),
          (128, 1, 1, 0), (256, 3, 2, 1), (128, 1, 1, 0), (256, 3, 2, 1),
          (128, 1, 1, 0), (256, 4, 1, 1)),
}  # fmt: skip
# Anchor steps of the original SSD configurations (the last maps are not exact powers of 2).
STRIDES = {300: (8, 16, 32, 64, 100, 300), 512: (8, 16, 32, 64, 128, 256, 512)}


class L2Norm(nn.Module):
    """Scales each position's channel vector to unit L2 norm, then by a learned per-channel
    scale.

    Args:
        channels: C.
        scale: initial value of every channel's scale (20 in SSD).
        eps: added to the norm.
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        # The norm in float32 so that half-precision inputs do not overflow the sum of squares.
        norm = x.float().pow(2).sum(1, keepdim=True).sqrt() + self.eps
        return (x.float() / norm * self.weight.view(1, -1, 1, 1)).to(x.dtype)


NORMS = (None, "BN")


def _conv_block(
    in_channels: int, out_channels: int, norm: str | None, **conv_args: int
) -> list[nn.Module]:
    """conv (+ BN) + ReLU, as flat layers of `features`."""
    block: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, **conv_args)]
    if norm == "BN":
        block.append(nn.BatchNorm2d(out_channels))
    return [*block, nn.ReLU(inplace=True)]


def _vgg16_features(width: float, norm: str | None) -> tuple[nn.Sequential, int, int]:
    """(features, index of conv4_3's ReLU, channels of fc7)."""
    layers: list[nn.Module] = []
    in_channels = 3
    conv4_3_relu = -1
    convs = 0
    for item in VGG16_LAYERS:
        if item == "M":
            # ceil_mode so that 75 -> 38 at SSD300's conv4_3, as in the original Caffe model.
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            continue
        out_channels = round(item * width)
        layers += _conv_block(in_channels, out_channels, norm, kernel_size=3, padding=1)
        in_channels = out_channels
        convs += 1
        if convs == CONV4_3:
            conv4_3_relu = len(layers) - 1
    fc = round(1024 * width)
    layers.append(nn.MaxPool2d(3, 1, padding=1))  # pool5
    layers += _conv_block(in_channels, fc, norm, kernel_size=3, padding=6, dilation=6)  # fc6
    layers += _conv_block(fc, fc, norm, kernel_size=1)  # fc7
    return nn.Sequential(*layers), conv4_3_relu, fc


class VGG16SSD(nn.Module):
    """SSD's VGG16 backbone returning its source feature maps.

    Args:
        input_size: 300 (six maps: 38, 19, 10, 5, 3, 1 pixels square) or 512 (seven maps:
            64, 32, 16, 8, 4, 2, 1).
        base_channels: conv1's width, 64 in VGG16; every layer scales by base_channels / 64.
        norm: None (VGG16 as in the zoo) or "BN" (BatchNorm after every conv).

    Attributes:
        out_channels: channels of each map (512, 1024, 512, 256, 256, 256[, 256] at
            base_channels 64).
        strides: the anchor step of each map in input pixels (SSD's configuration).
    """

    def __init__(
        self, input_size: int = 300, base_channels: int = 64, norm: str | None = None
    ) -> None:
        super().__init__()
        if input_size not in INPUT_SIZES:
            raise ValueError(
                f"VGG16SSD: input_size must be one of {', '.join(map(str, INPUT_SIZES))}; "
                f"got {input_size!r}"
            )
        if isinstance(base_channels, bool) or not isinstance(base_channels, int):
            raise TypeError(f"VGG16SSD: base_channels must be an int, got {base_channels!r}")
        if base_channels < 8 or base_channels % 8:
            raise ValueError(
                f"VGG16SSD: base_channels must be a multiple of 8 (64 in VGG16), "
                f"got {base_channels}"
            )
        if norm not in NORMS:
            raise ValueError(f"VGG16SSD: norm must be None or 'BN', got {norm!r}")
        self.input_size = input_size
        self.base_channels = base_channels
        self.norm = norm
        width = base_channels / 64
        self.features, self.conv4_3_relu, fc = _vgg16_features(width, norm)
        self.l2_norm = L2Norm(round(512 * width))
        extra: list[nn.Module] = []
        in_channels = fc
        for out_channels, kernel, stride, padding in EXTRA_LAYERS[input_size]:
            out_channels = round(out_channels * width)
            conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding)
            extra.append(
                conv if norm is None else nn.Sequential(conv, nn.BatchNorm2d(out_channels))
            )
            in_channels = out_channels
        self.extra = nn.ModuleList(extra)
        self.out_channels = [round(512 * width), fc] + [
            _out_channels(layer) for layer in self.extra[1::2]
        ]
        self.strides = list(STRIDES[input_size])
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for module in self.extra.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x Tensor[B, 3, input_size, input_size] -> [Tensor[B, out_channels[i], S_i, S_i]]."""
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.conv4_3_relu:
                outs.append(self.l2_norm(x))
        outs.append(x)
        for i, layer in enumerate(self.extra):
            x = torch.relu(layer(x))
            if i % 2 == 1:
                outs.append(x)
        return outs


def _out_channels(layer: nn.Module) -> int:
    conv = layer if isinstance(layer, nn.Conv2d) else layer[0]
    return conv.out_channels
