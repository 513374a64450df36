"""A zoo row's released 2019 checkpoint: the one place that says how it is run.

Its weights give the 2019 code's detections under the 2019 box conventions (MMDET_V06) and
the 2019 resize (`DataConfig.legacy_resize`), converted by `convert.from_mmdet` and loaded
strictly. `released_config` gives the row's config so changed; `load_released` builds the
model and loads a checkpoint into it (Detector.from_zoo and ``python -m det_engine.test``
use it); `load_pretrained` loads one into a model the caller built, from a local file or the
hub cache.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from torch import nn

from det_backbones.pretrained import cache_dir, download_to_cache
from det_heads import MMDET_V06
from det_models.builder import build_model
from det_models.checkpoint import read_checkpoint
from det_models.config import ZooConfig, replace_path
from det_models.convert import from_mmdet
from det_models.convert.common import check_fits
from det_models.zoo.configs import get
from det_models.zoo.entry import ZooEntry
from det_models.zoo.lookup import entry as find_entry


def released_config(
    model: str, backbone: str, schedule: str, variant: str | None = None
) -> ZooConfig:
    """The config a row's released 2019 checkpoint runs under: the row's, with the 2019 box
    conventions and the 2019 resize."""
    config = get(model, backbone, schedule, variant)
    return dataclasses.replace(
        config,
        model=replace_path(config.model, "conventions", MMDET_V06),
        data=dataclasses.replace(config.data, legacy_resize=True),
    )


def load_released(
    checkpoint: Mapping,
    model: str,
    backbone: str,
    schedule: str,
    variant: str | None = None,
    *,
    num_classes: int | None = None,
    source: str = "checkpoint",
) -> tuple[nn.Module, ZooConfig]:
    """The row's detector with its released 2019 checkpoint loaded, and the config it runs
    under (released_config, with num_classes when given).

    Args:
        checkpoint: the checkpoint as torch.load returns it (mmdetection v0.6 layout).
        model, backbone, schedule, variant: the row's key.
        num_classes: object classes of the checkpoint, if not the row's dataset's.
        source: how messages name the checkpoint (its path).

    Raises:
        ValueError: unknown row; a checkpoint that does not fit the model (the message names
            the first missing, unexpected and mis-shaped keys).
    """
    config = released_config(model, backbone, schedule, variant)
    if num_classes is not None:
        config = dataclasses.replace(
            config, model=replace_path(config.model, "num_classes", num_classes)
        )
    net = build_model(config.model)
    _load_converted(net, checkpoint, find_entry(*config.key), source)
    return net, config


def _load_converted(
    model: nn.Module, checkpoint: Mapping, entry: ZooEntry, source: str
) -> list[str]:
    """Converts a 2019 checkpoint for entry's model and loads it strictly; the unused keys."""
    converted = from_mmdet(checkpoint, entry)
    check_fits(converted.state_dict, model, f"{source}, converted for zoo row {entry.key},")
    model.load_state_dict(converted.state_dict, strict=True)
    return converted.unused


def load_pretrained(
    model: nn.Module,
    entry: ZooEntry,
    path_or_url: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> list[str]:
    """Converts a 2019 zoo checkpoint and loads it strictly into model.

    Args:
        model: the model of the row built with the 2019 conventions, e.g.
            zoo.build(*entry.key, conventions=det_heads.MMDET_V06).
        entry: the zoo row the checkpoint belongs to.
        path_or_url: a local .pth file, a URL, or None for the row's released checkpoint
            (entry.url). URLs are looked up in torch.hub's cache (torch.hub.get_dir() /
            "checkpoints") and fetched into it when missing and download is True.
        download: whether a missing cached file may be fetched from the network.

    Returns:
        The checkpoint keys that had no place in the model (reported, not loaded).

    Raises:
        FileNotFoundError: a local path that does not exist, or a URL whose file is not cached
            and cannot be fetched (download False or offline); the message names the file and
            where to put it.
        ValueError: the converted checkpoint does not fit the model (missing or unexpected
            keys, wrong shapes).
    """
    if not isinstance(entry, ZooEntry):
        raise TypeError(f"entry must be a ZooEntry (zoo.entry(...)), got {type(entry).__name__}")
    source = path_or_url if path_or_url is not None else entry.url
    if source is None:
        raise ValueError(
            f"path_or_url: zoo entry {entry.key} has no released checkpoint; give a local file"
        )
    built = getattr(model, "model_config", None)
    if built is not None and built.conventions != MMDET_V06:
        raise ValueError(
            f"model: the 2019 checkpoint of {entry.key} gives the 2019 code's detections only "
            "under its box conventions; build the model with them: "
            f"zoo.build(*{entry.key}, conventions=det_heads.MMDET_V06) (or use "
            "det_models.Detector.from_zoo(..., checkpoint=...), which does so)"
        )
    path = _local_file(str(source), download)
    checkpoint = read_checkpoint(path)
    return _load_converted(model, checkpoint, entry, str(path))


def _local_file(source: str, download: bool) -> Path:
    if urlparse(source).scheme not in ("http", "https"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"path_or_url: no checkpoint file at {path}")
        return path
    filename = Path(urlparse(source).path).name
    cached = cache_dir() / filename
    if cached.is_file():
        return cached
    advice = (
        f"checkpoint {filename} is not in torch.hub's cache; download {source} and save it "
        f"as {cached}, or pass the local file's path"
    )
    return download_to_cache(source, cached, download=download, advice=advice)
