"""A built detector's backbone set to its ImageNet initialisation.

`build_model` gives freshly initialised weights everywhere (the tests build many models); a
training run then loads the weights its config names, as the 2019 detectors'
``init_weights(pretrained)`` did:

>>> from det_models import init_backbone, zoo
>>> model = zoo.build("faster_rcnn", "r50-caffe", "1x")
>>> report = init_backbone(model)  # doctest: +SKIP
>>> report.source, report.path.name, report.missing  # doctest: +SKIP
('open-mmlab://resnet50_caffe', 'resnet50_caffe-788b5fa3.pth', ())
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from det_backbones.pretrained import (
    LoadReport,
    WeightsMismatchError,
    WeightsNotFoundError,
    load_pretrained,
    resolve,
)

__all__ = [
    "LoadReport",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "find_backbone_weights",
    "init_backbone",
]


def find_backbone_weights(source: str | os.PathLike, *, download: bool = True) -> Path:
    """The local file of backbone weights: a path as it is, a URI of det_backbones.SOURCES
    from $DET_WEIGHTS_DIR, torch.hub's cache, or downloaded there (det_backbones.resolve).

    Raises:
        WeightsNotFoundError: naming the file, its URL and where to save it.
    """
    return resolve(source, download=download)


def init_backbone(
    model: nn.Module, source: str | os.PathLike | None = None, *, download: bool = True
) -> LoadReport:
    """Loads ImageNet weights into a detector's backbone.

    Args:
        model: a detector built by det_models (it has ``backbone`` and ``model_config``).
        source: a URI of det_backbones.SOURCES or a weights file; None for the model's own,
            ``model.model_config.backbone.pretrained``.
        download: whether a URI's file found neither in $DET_WEIGHTS_DIR nor in torch.hub's
            cache may be downloaded.

    Returns:
        det_backbones' LoadReport (source, file, tensors loaded, missing, unexpected).

    Raises:
        ValueError: no source given and the config names none.
        det_backbones.WeightsNotFoundError: the file is nowhere and cannot be fetched (the
            message names the file, its URL and where to save it).
        det_backbones.WeightsMismatchError: the file does not fit the backbone.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"init_backbone: model must be a det_models detector; got {type(model)}")
    if source is None:
        config = getattr(model, "model_config", None)
        source = config.backbone.pretrained if config is not None else None
        if source is None:
            raise ValueError(
                "init_backbone: the model's config names no pretrained weights "
                "(model_config.backbone.pretrained is None); pass a URI or a file"
            )
    return load_pretrained(backbone, source, download=download)
