"""VGG16 backbone of SSD300 / SSD512 (atrous fc6/fc7, L2-normalised conv4_3, extra layers).

`features` keeps torchvision's vgg16 indices for conv1_1..conv5_3 (features.0 .. features.28),
so torchvision's `features.*` weights load key for key; pool5 (features.30) becomes 3x3 with
stride 1, and the convolutional fc6 (features.31, 3x3, dilation 6) and fc7 (features.33, 1x1)
follow, as in the SSD paper and mmdetection's SSDVGG. `extra` and `l2_norm` keep
mmdetection's names too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INPUT_SIZES = (300, 512)
# VGG16 configuration D: channels of each conv, "M" a 2x2 max-pool.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Index in `features` of conv4_3's ReLU, whose output is the first source map.
CONV4_3_RELU = 22
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


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG16_LAYERS:
        if item == "M":
            # ceil_mode so that 75 -> 38 at SSD300's conv4_3, as in the original Caffe model.
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = item
    layers += [
        nn.MaxPool2d(3, 1, padding=1),  # pool5
        nn.Conv2d(512, 1024, 3, padding=6, dilation=6),  # fc6
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, 1),  # fc7
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers)


class VGG16SSD(nn.Module):
    """SSD's VGG16 backbone returning its source feature maps.

    Args:
        input_size: 300 (six maps: 38, 19, 10, 5, 3, 1 pixels square) or 512 (seven maps:
            64, 32, 16, 8, 4, 2, 1).

    Attributes:
        out_channels: channels of each map (512, 1024, 512, 256, 256, 256[, 256]).
        strides: the anchor step of each map in input pixels (SSD's configuration).
    """

    def __init__(self, input_size: int = 300) -> None:
        super().__init__()
        if input_size not in INPUT_SIZES:
            raise ValueError(
                f"VGG16SSD: input_size must be one of {', '.join(map(str, INPUT_SIZES))}; "
                f"got {input_size!r}"
            )
        self.input_size = input_size
        self.features = _vgg16_features()
        self.l2_norm = L2Norm(512)
        extra = []
        in_channels = 1024
        for out_channels, kernel, stride, padding in EXTRA_LAYERS[input_size]:
            extra.append(nn.Conv2d(in_channels, out_channels, kernel, stride, padding))
            in_channels = out_channels
        self.extra = nn.ModuleList(extra)
        self.out_channels = [512, 1024] + [layer.out_channels for layer in self.extra[1::2]]
        self.strides = list(STRIDES[input_size])
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for module in self.extra:
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x Tensor[B, 3, input_size, input_size] -> [Tensor[B, out_channels[i], S_i, S_i]]."""
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == CONV4_3_RELU:
                outs.append(self.l2_norm(x))
        outs.append(x)
        for i, layer in enumerate(self.extra):
            x = torch.relu(layer(x))
            if i % 2 == 1:
                outs.append(x)
        return outs
