"""Feature Pyramid Network neck (Lin et al., 2017) with the zoo's extra-level variants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from det_heads.conv_norm import check_norm, conv_with_norm
from det_heads.inputs import check_features

Extra = Literal["maxpool", "conv_on_input", "conv_on_output"]


class FPN(nn.Module):
    """Top-down feature pyramid: 1x1 laterals, nearest upsampling and sum, 3x3 outputs.

    Levels beyond the backbone's come from ``extra``: "maxpool" (P6 = max-pool of the
    top output, for RPN / Faster / Mask / Cascade R-CNN), "conv_on_input" (P6 = stride-2
    3x3 conv on the top backbone map, P7 = stride-2 conv on P6, for RetinaNet) or
    "conv_on_output" (the same convs starting from the top output).

    Args:
        in_channels: channels of each backbone map (C2..C5 = (256, 512, 1024, 2048) for ResNet-50).
        out_channels: channels of every output level (256 in the zoo).
        num_outs: number of output levels (5 in the zoo).
        extra: how the levels beyond the inputs are made.
        start_level: first backbone map used (1 for RetinaNet, which starts at C3).
        relu_before_extra: apply ReLU before the second and later extra convs (off in 2019).
        norm: None, or "GN" for the zoo's GN rows: every lateral and output conv is a
            bias-free conv followed by GroupNorm (det_heads.conv_norm.ConvGN); with
            extra "maxpool" only.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        num_outs: int = 5,
        extra: Extra = "maxpool",
        *,
        start_level: int = 0,
        relu_before_extra: bool = False,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        check_norm("FPN", norm)
        if extra not in ("maxpool", "conv_on_input", "conv_on_output"):
            raise ValueError(
                f"FPN: extra must be 'maxpool', 'conv_on_input' or 'conv_on_output', got {extra!r}"
            )
        if not 0 <= start_level < len(in_channels):
            raise ValueError(
                f"FPN: start_level must be in [0, {len(in_channels)}), got {start_level}"
            )
        if norm is not None and extra != "maxpool":
            raise ValueError(
                f"FPN: norm {norm!r} is built with extra 'maxpool' only, got extra {extra!r}"
            )
        used = list(in_channels[start_level:])
        if num_outs < len(used):
            raise ValueError(f"FPN: num_outs ({num_outs}) must be >= the levels used ({len(used)})")
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.extra = extra
        self.start_level = start_level
        self.relu_before_extra = relu_before_extra
        self.norm = norm
        self.lateral_convs = nn.ModuleList(conv_with_norm(c, out_channels, 1, norm) for c in used)
        self.output_convs = nn.ModuleList(
            conv_with_norm(out_channels, out_channels, 3, norm) for _ in used
        )
        num_extra = num_outs - len(used)
        self.extra_convs = nn.ModuleList()
        if extra != "maxpool":
            for i in range(num_extra):
                c_in = used[-1] if (i == 0 and extra == "conv_on_input") else out_channels
                self.extra_convs.append(nn.Conv2d(c_in, out_channels, 3, stride=2, padding=1))
        for m in (*self.lateral_convs, *self.output_convs, *self.extra_convs):
            if isinstance(m, nn.Conv2d):  # a ConvGN has initialised itself
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """Backbone maps -> pyramid.

        Args:
            inputs: len(in_channels) maps Tensor[B, in_channels[i], H_i, W_i], finest first.

        Returns:
            num_outs maps Tensor[B, out_channels, H_l, W_l], finest first, each half the
            size of the previous.
        """
        check_features("FPN", inputs, len(self.in_channels))
        used = list(inputs[self.start_level :])
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, used, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.output_convs, laterals, strict=True)]
        num_extra = self.num_outs - len(outs)
        if self.extra == "maxpool":
            for _ in range(num_extra):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            return outs
        for i, conv in enumerate(self.extra_convs):
            if i == 0:
                source = used[-1] if self.extra == "conv_on_input" else outs[-1]
            else:
                source = F.relu(outs[-1]) if self.relu_before_extra else outs[-1]
            outs.append(conv(source))
        return outs
