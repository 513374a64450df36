"""ResNet and ResNeXt backbones (pytorch and caffe style) with GN and deformable stages.

Module names follow torchvision's resnet: `conv1`, `bn1`, `layer1`..`layer4`, and inside a
block `conv1`..`conv3`, `bn1`..`bn3`, `downsample.0` (1x1 conv) and `downsample.1` (norm).
A torchvision resnet*/resnext* state dict therefore loads key for key (without `fc.*`).
The norm layers keep the `bn` names whatever `norm` is (GN weights sit in `bn1.weight`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from det_backbones.norms import NORMS, conv_norm, is_batch_norm, make_norm
from det_ops.modules import DeformConv2d, DeformConv2dPack, ModulatedDeformConv2dPack

# depth -> (block kind, blocks per stage)
ARCH_SETTINGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STYLES = ("pytorch", "caffe")
DCN_KINDS = (None, "dconv", "mdconv")


def _conv3x3(
    in_channels: int,
    out_channels: int,
    stride: int,
    groups: int,
    dcn: str | None,
    deform_groups: int,
) -> nn.Module:
    """The 3x3 convolution of a block: plain, DCN v1 or DCN v2 (offset conv at zero)."""
    if dcn is None:
        return nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, groups=groups, bias=False)
    layer = DeformConv2dPack if dcn == "dconv" else ModulatedDeformConv2dPack
    return layer(
        in_channels,
        out_channels,
        3,
        stride,
        padding=1,
        groups=groups,
        deform_groups=deform_groups,
        bias=False,
    )


def _shortcut(downsample: nn.Module, x: Tensor) -> Tensor:
    """The projection shortcut: Sequential(conv, norm), the pair through conv_norm."""
    if isinstance(downsample, nn.Sequential) and len(downsample) == 2:
        return conv_norm(downsample[0], downsample[1], x)
    return downsample(x)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34).

    Args:
        in_channels: C_in.
        planes: output channels (expansion 1).
        stride: stride of the first 3x3 conv.
        downsample: the projection of the shortcut, or None for identity.
        norm: see `det_backbones.norms.make_norm`.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        norm: str,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """x Tensor[B, C_in, H, W] -> Tensor[B, planes, H / stride, W / stride]."""
        identity = x if self.downsample is None else _shortcut(self.downsample, x)
        out = self.relu(conv_norm(self.conv1, self.bn1, x))
        out = conv_norm(self.conv2, self.bn2, out)
        out += identity  # in place: saves a map-sized allocation per block
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt, optionally deformable), 1x1 expand, residual.

    Args:
        in_channels: C_in.
        planes: base width; the block outputs planes * 4 channels.
        stride: 2 for the first block of a downsampling stage, else 1. "pytorch" style
            puts it on the 3x3 conv, "caffe" style on the first 1x1.
        downsample: the projection of the shortcut, or None for identity.
        norm: see `det_backbones.norms.make_norm`.
        style: "pytorch" or "caffe".
        groups, base_width: ResNeXt cardinality and width per group; the inner width is
            floor(planes * base_width / 64) * groups.
        dcn, deform_groups: None, "dconv" or "mdconv" for the 3x3 conv, and its offset groups.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        norm: str,
        style: str = "pytorch",
        groups: int = 1,
        base_width: int = 64,
        dcn: str | None = None,
        deform_groups: int = 1,
    ) -> None:
        super().__init__()
        width = planes * base_width // 64 * groups
        stride_1x1, stride_3x3 = (stride, 1) if style == "caffe" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride_1x1, bias=False)
        self.bn1 = make_norm(norm, width)
        self.conv2 = _conv3x3(width, width, stride_3x3, groups, dcn, deform_groups)
        self.bn2 = make_norm(norm, width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = make_norm(norm, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """x Tensor[B, C_in, H, W] -> Tensor[B, planes * 4, H / stride, W / stride]."""
        identity = x if self.downsample is None else _shortcut(self.downsample, x)
        out = self.relu(conv_norm(self.conv1, self.bn1, x))
        out = self.relu(conv_norm(self.conv2, self.bn2, out))
        out = conv_norm(self.conv3, self.bn3, out)
        out += identity  # in place: saves a map-sized allocation per block
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet / ResNeXt backbone returning the outputs of the chosen stages (C2-C5).

    Args:
        depth: 18, 34, 50, 101 or 152.
        style: "pytorch" (stride on the 3x3 conv, torchvision's weights) or "caffe" (stride
            on the first 1x1 conv, Detectron's MSRA weights).
        out_indices: the stages to return, increasing, each in 0..3 (0 is C2, stride 4).
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and stages 1..k: their
            parameters get requires_grad False and their norm layers stay in eval mode.
        norm: "FrozenBN", "BN", "SyncBN" or "GN" (32 groups).
        norm_eval: keep every BN / SyncBN layer in eval mode (running statistics used and
            never updated) when the model is put in train mode.
        dcn: None, "dconv" (DCN v1) or "mdconv" (modulated DCN v2) for the 3x3 conv of the
            Bottleneck blocks of the stages picked by stage_with_dcn.
        stage_with_dcn: four booleans, one per stage.
        deform_groups: offset groups of the deformable convs.
        groups, base_width: ResNeXt cardinality and width per group (1 and 64 for ResNet).
        base_channels: channels of the stem; stage i has ``base_channels * 2**i`` planes.
            64 is the standard network (and the only width pretrained weights fit); a
            smaller value gives a slim ResNet for training from scratch on small data.

    Attributes:
        out_channels: channels of each returned map.
        strides: stride of each returned map with respect to the input.
    """

    def __init__(
        self,
        depth: int,
        *,
        style: str = "pytorch",
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = 1,
        norm: str = "FrozenBN",
        norm_eval: bool = True,
        dcn: str | None = None,
        stage_with_dcn: Sequence[bool] = (False, False, False, False),
        deform_groups: int = 1,
        groups: int = 1,
        base_width: int = 64,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        _check_arguments(
            depth=depth,
            style=style,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm=norm,
            dcn=dcn,
            stage_with_dcn=stage_with_dcn,
            deform_groups=deform_groups,
            groups=groups,
            base_width=base_width,
            base_channels=base_channels,
        )
        kind, stage_blocks = ARCH_SETTINGS[depth]
        self.depth = depth
        self.style = style
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm = norm
        self.norm_eval = norm_eval

        self.conv1 = nn.Conv2d(3, base_channels, 7, 2, padding=3, bias=False)
        self.bn1 = make_norm(norm, base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)

        block = BasicBlock if kind == "basic" else Bottleneck
        in_channels = base_channels
        stage_channels = []
        for i, blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            stage, in_channels = self._make_stage(
                block,
                in_channels,
                planes,
                blocks,
                stride=1 if i == 0 else 2,
                dcn=dcn if stage_with_dcn[i] else None,
                deform_groups=deform_groups,
                groups=groups,
                base_width=base_width,
            )
            self.add_module(f"layer{i + 1}", stage)
            stage_channels.append(in_channels)
        self.out_channels = [stage_channels[i] for i in self.out_indices]
        self.strides = [4 * 2**i for i in self.out_indices]

        self._init_weights()
        self._freeze_stages()

    def _make_stage(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        in_channels: int,
        planes: int,
        blocks: int,
        stride: int,
        dcn: str | None,
        deform_groups: int,
        groups: int,
        base_width: int,
    ) -> tuple[nn.Sequential, int]:
        """One stage of `blocks` blocks; the first one strides and projects the shortcut.
        Returns the stage and its output channels."""
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                make_norm(self.norm, out_channels),
            )
        if block is BasicBlock:
            extra = {}
        else:
            extra = dict(
                style=self.style,
                groups=groups,
                base_width=base_width,
                dcn=dcn,
                deform_groups=deform_groups,
            )
        layers = [block(in_channels, planes, stride, downsample, self.norm, **extra)]
        layers += [
            block(out_channels, planes, 1, None, self.norm, **extra) for _ in range(blocks - 1)
        ]
        return nn.Sequential(*layers), out_channels

    def _init_weights(self) -> None:
        for name, module in self.named_modules():
            # The offset predictors start at zero so that DCN starts as a plain conv.
            if name.endswith("conv_offset"):
                continue
            if isinstance(module, (nn.Conv2d, DeformConv2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and stage modules that frozen_stages freezes."""
        if self.frozen_stages < 0:
            return []
        stem = [self.conv1, self.bn1]
        return stem + [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]

    def _freeze_stages(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> ResNet:
        """Sets train/eval mode, keeping frozen stages, and with norm_eval every BN, in eval."""
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.eval()
            if self.norm_eval:
                for module in self.modules():
                    if is_batch_norm(module):
                        module.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        """x Tensor[B, 3, H, W] -> [Tensor[B, out_channels[i], H / strides[i], W / strides[i]]]
        (sizes rounded up)."""
        x = self.maxpool(self.relu(conv_norm(self.conv1, self.bn1, x)))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            if i in self.out_indices:
                outs.append(x)
            if i == self.out_indices[-1]:
                break
        return outs


def _check_arguments(
    *,
    depth: int,
    style: str,
    out_indices: Sequence[int],
    frozen_stages: int,
    norm: str,
    dcn: str | None,
    stage_with_dcn: Sequence[bool],
    deform_groups: int,
    groups: int,
    base_width: int,
    base_channels: int,
) -> None:
    """ResNet's argument checks, at the public boundary."""
    if not isinstance(base_channels, int) or base_channels < 8 or base_channels % 8:
        raise ValueError(
            f"ResNet: base_channels must be a positive multiple of 8; got {base_channels!r}"
        )
    if depth not in ARCH_SETTINGS:
        raise ValueError(
            f"ResNet: depth must be one of {', '.join(map(str, ARCH_SETTINGS))}; got {depth!r}"
        )
    if style not in STYLES:
        raise ValueError(f"ResNet: style must be one of {', '.join(STYLES)}; got {style!r}")
    if norm not in NORMS:
        raise ValueError(f"ResNet: norm must be one of {', '.join(NORMS)}; got {norm!r}")
    indices = list(out_indices)
    if not indices or any(i not in range(4) for i in indices) or indices != sorted(set(indices)):
        raise ValueError(
            f"ResNet: out_indices must be increasing stage indices in 0, 1, 2, 3; "
            f"got {out_indices!r}"
        )
    if frozen_stages not in range(-1, 5):
        raise ValueError(f"ResNet: frozen_stages must be in -1..4; got {frozen_stages!r}")
    if dcn not in DCN_KINDS:
        raise ValueError(f"ResNet: dcn must be one of None, 'dconv', 'mdconv'; got {dcn!r}")
    if len(stage_with_dcn) != 4:
        raise ValueError(
            f"ResNet: stage_with_dcn must have 4 entries, one per stage; got {stage_with_dcn!r}"
        )
    kind = ARCH_SETTINGS[depth][0]
    if kind == "basic" and dcn is not None and any(stage_with_dcn):
        raise ValueError(
            f"ResNet: dcn needs Bottleneck blocks (depth 50, 101 or 152); got depth {depth}"
        )
    if kind == "basic" and (groups != 1 or base_width != 64):
        raise ValueError(
            f"ResNet: groups/base_width need Bottleneck blocks (depth 50, 101 or 152); "
            f"got depth {depth} with groups={groups}, base_width={base_width}"
        )
    if deform_groups < 1 or groups < 1 or base_width < 1:
        raise ValueError(
            f"ResNet: deform_groups, groups and base_width must be positive; got "
            f"{deform_groups}, {groups}, {base_width}"
        )
