"""The backbone names of the model zoo and `build_backbone`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from det_backbones.resnet import ResNet
from det_backbones.vgg_ssd import VGG16SSD

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "r18": partial(ResNet, 18),
    "r34": partial(ResNet, 34),
    "r50": partial(ResNet, 50),
    "r101": partial(ResNet, 101),
    "r152": partial(ResNet, 152),
    "r50-caffe": partial(ResNet, 50, style="caffe"),
    "r101-caffe": partial(ResNet, 101, style="caffe"),
    "x101-32x4d": partial(ResNet, 101, groups=32, base_width=4),
    "x101-64x4d": partial(ResNet, 101, groups=64, base_width=4),
    "vgg16-ssd300": partial(VGG16SSD, 300),
    "vgg16-ssd512": partial(VGG16SSD, 512),
}


def build_backbone(name: str, **overrides: Any) -> nn.Module:
    """The backbone the model zoo calls `name`, with constructor arguments overridden.

    ResNets default to the zoo's training setup: FrozenBN, frozen_stages=1, norm_eval=True,
    all four stages returned.

    Args:
        name: one of BACKBONES (r18, r34, r50, r101, r152, r50-caffe, r101-caffe,
            x101-32x4d, x101-64x4d, vgg16-ssd300, vgg16-ssd512).
        overrides: keyword arguments of ResNet (e.g. norm="GN", dcn="dconv",
            stage_with_dcn=(False, True, True, True), out_indices=(1, 2, 3)); of VGG16SSD
            only base_channels and norm.

    Returns:
        the ResNet or VGG16SSD.
    """
    if name not in BACKBONES:
        raise ValueError(
            f"build_backbone: name must be one of {', '.join(BACKBONES)}; got {name!r}"
        )
    factory = BACKBONES[name]
    if factory.func is VGG16SSD:
        unknown = sorted(set(overrides) - {"base_channels", "norm"})
        if unknown:
            raise TypeError(
                f"build_backbone: {name} takes only base_channels and norm overrides; got {unknown}"
            )
    return factory(**overrides)
