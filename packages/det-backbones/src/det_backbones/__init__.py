"""det-backbones: ResNet/ResNeXt (pytorch and caffe style, GN, DCN) and VGG16-SSD backbones.

Backbones return a list of feature maps and expose `out_channels` and `strides`.
"""

from importlib import metadata as _metadata

from det_backbones.build import BACKBONES, build_backbone
from det_backbones.fuse import fuse
from det_backbones.norms import NORMS, FrozenBatchNorm2d, make_norm
from det_backbones.pretrained import (
    SOURCES,
    LoadReport,
    WeightsMismatchError,
    WeightsNotFoundError,
    WeightSource,
    load_pretrained,
    resolve,
)
from det_backbones.resnet import BasicBlock, Bottleneck, ResNet
from det_backbones.vgg_ssd import VGG16SSD, L2Norm
from det_backbones.weights import load_detectron, load_torchvision

try:
    __version__ = _metadata.version("det-backbones")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "BACKBONES",
    "NORMS",
    "SOURCES",
    "VGG16SSD",
    "BasicBlock",
    "Bottleneck",
    "FrozenBatchNorm2d",
    "L2Norm",
    "LoadReport",
    "ResNet",
    "WeightSource",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "__version__",
    "build_backbone",
    "fuse",
    "load_detectron",
    "load_pretrained",
    "load_torchvision",
    "make_norm",
    "resolve",
]
