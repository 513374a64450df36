"""The ImageNet initialisations of the 2019 model zoo: where each file lives and how it loads.

Each zoo row's config names the weights its backbone started from by a URI, as the 2019
configs did: ``modelzoo://resnet50`` (torchvision's ImageNet ResNet-50),
``open-mmlab://resnet50_caffe`` (Detectron's MSRA ResNet-50 re-saved by open-mmlab), ...
`SOURCES` maps each URI to its file, its key layout and the input normalisation the weights
expect. `resolve` finds the file (a local path, ``$DET_WEIGHTS_DIR``, torch.hub's cache, or a
download checked against the SHA-256 prefix in the file's name); `load_pretrained` copies it
into a ResNet or VGG16SSD and says what was left at its initialisation.

Layouts:
- "resnet": torchvision's names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``downsample.0/1``,
  ``fc.*`` classifier dropped), as our ResNet's. The caffe files hold Detectron's folded BN
  as BN layers (weight, bias, running_mean, running_var) and load as they are, as mmcv
  loaded them into the 2019 code's frozen nn.BatchNorm2d: our FrozenBatchNorm2d (eps 1e-5)
  computes with them what it computed.
- "resnet-gn": mmdetection v0.6's GroupNorm names, ``gn1``..``gn3`` (stem ``gn1``) where ours
  say ``bn1``..``bn3``; renamed on loading.
- "vgg16": ``features.N`` as VGG16SSD's (conv1_1..conv5_3 at 0..28, fc6 and fc7 as
  convolutions at 31 and 33); SSD's extra layers and L2Norm keep their initialisation.

Files are read with ``torch.load(weights_only=True)`` (no code runs); a Detectron ``.pkl``
goes to `det_backbones.weights.load_detectron`.
"""

from __future__ import annotations

import os
import pickle
import re
import urllib.error
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.hub import download_url_to_file

from det_backbones.resnet import ResNet
from det_backbones.vgg_ssd import VGG16SSD
from det_backbones.weights import load_detectron, load_torchvision

# The folder searched first for the files of SOURCES (by file name), before torch.hub's cache.
WEIGHTS_DIR_ENV = "DET_WEIGHTS_DIR"
_OPEN_MMLAB = "https://s3.ap-northeast-2.amazonaws.com/open-mmlab/pretrain/third_party"
_TORCHVISION = "https://download.pytorch.org/models"

# (mean, std, to_rgb) of the images each family of weights was trained on, 0-255 scale.
PYTORCH_INPUT = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), True)
CAFFE_INPUT = ((102.9801, 115.9465, 122.7717), (1.0, 1.0, 1.0), False)
SSD_INPUT = ((123.675, 116.28, 103.53), (1.0, 1.0, 1.0), True)


@dataclass(frozen=True)
class WeightSource:
    """One ImageNet initialisation of the 2019 zoo.

    Attributes:
        uri: the name the 2019 configs give it (``pretrained=``), e.g. "modelzoo://resnet50".
        url: where it is downloaded from.
        archs: the det-backbones names (build_backbone) it fits; "resnet-gn" files fit them
            with norm="GN".
        layout: "resnet", "resnet-gn" or "vgg16" (see the module docstring).
        input: (mean, std, to_rgb) of the images the weights expect, 0-255 scale.
        other_names: other file names holding the same weights, also accepted in the
            folders searched (torchvision's 2019 file of the same ImageNet weights).
    """

    uri: str
    url: str
    archs: tuple[str, ...]
    layout: str
    input: tuple[tuple[float, float, float], tuple[float, float, float], bool]
    other_names: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        """The file's name, e.g. "resnet50-0676ba61.pth"."""
        return self.url.rsplit("/", 1)[1]

    @property
    def sha256_prefix(self) -> str:
        """The start of the file's SHA-256, written after the last "-" of its name (torch.hub's
        convention)."""
        return self.file_name.rsplit("-", 1)[1].split(".", 1)[0]


SOURCES: dict[str, WeightSource] = {
    s.uri: s
    for s in (
        # torchvision's weights registry (ResNet50_Weights.IMAGENET1K_V1, ...); the 2019
        # configs' model_urls named the same ImageNet weights saved earlier.
        WeightSource(
            "modelzoo://resnet50",
            f"{_TORCHVISION}/resnet50-0676ba61.pth",
            ("r50",),
            "resnet",
            PYTORCH_INPUT,
            other_names=("resnet50-19c8e357.pth",),
        ),
        WeightSource(
            "modelzoo://resnet101",
            f"{_TORCHVISION}/resnet101-63fe2227.pth",
            ("r101",),
            "resnet",
            PYTORCH_INPUT,
            other_names=("resnet101-5d3b4d8f.pth",),
        ),
        WeightSource(
            "open-mmlab://resnext101_32x4d",
            f"{_OPEN_MMLAB}/resnext101_32x4d-a5af3160.pth",
            ("x101-32x4d",),
            "resnet",
            PYTORCH_INPUT,
        ),
        WeightSource(
            "open-mmlab://resnext101_64x4d",
            f"{_OPEN_MMLAB}/resnext101_64x4d-ee2c6f71.pth",
            ("x101-64x4d",),
            "resnet",
            PYTORCH_INPUT,
        ),
        WeightSource(
            "open-mmlab://resnet50_caffe",
            f"{_OPEN_MMLAB}/resnet50_caffe-788b5fa3.pth",
            ("r50-caffe",),
            "resnet",
            CAFFE_INPUT,
        ),
        WeightSource(
            "open-mmlab://resnet101_caffe",
            f"{_OPEN_MMLAB}/resnet101_caffe-3ad79236.pth",
            ("r101-caffe",),
            "resnet",
            CAFFE_INPUT,
        ),
        WeightSource(
            "open-mmlab://vgg16_caffe",
            f"{_OPEN_MMLAB}/vgg16_caffe-292e1171.pth",
            ("vgg16-ssd300", "vgg16-ssd512"),
            "vgg16",
            SSD_INPUT,
        ),
        # Detectron's GN ResNets (R-50-GN.pkl, R-101-GN.pkl) re-saved with v0.6's names; they
        # expect caffe-normalised BGR input.
        WeightSource(
            "open-mmlab://detectron/resnet50_gn",
            f"{_OPEN_MMLAB}/resnet50_gn-9186a21c.pth",
            ("r50",),
            "resnet-gn",
            CAFFE_INPUT,
        ),
        WeightSource(
            "open-mmlab://detectron/resnet101_gn",
            f"{_OPEN_MMLAB}/resnet101_gn-cac0ab98.pth",
            ("r101",),
            "resnet-gn",
            CAFFE_INPUT,
        ),
        # A GN ResNet-50 trained in PyTorch by a contributor (thangvubk).
        WeightSource(
            "open-mmlab://contrib/resnet50_gn",
            f"{_OPEN_MMLAB}/resnet50_gn_thangvubk-ad1730dd.pth",
            ("r50",),
            "resnet-gn",
            PYTORCH_INPUT,
        ),
    )
}

# Model keys that no ImageNet file holds: DCN offset predictors (they start at zero, so a
# deformable conv starts as the plain conv it replaced); SSD's extra layers and L2Norm; and
# VGG16's fc6/fc7 convolutions, which torchvision's vgg16 (a classifier of Linear layers)
# lacks but vgg16_caffe holds.
_OPTIONAL_MISSING = {
    ResNet: re.compile(r"\.conv_offset\."),
    VGG16SSD: re.compile(r"^(extra\.|l2_norm\.|features\.(31|33)\.)"),
}
_CLASSIFIER = re.compile(r"^(fc|classifier)\.")
_GN_NAME = re.compile(r"(^|\.)gn(\d)(?=\.)")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class WeightsNotFoundError(FileNotFoundError):
    """A backbone's weights are neither where they were said to be nor downloadable; the
    message names the file, its address and where to put it."""


class WeightsMismatchError(ValueError):
    """A weights file that does not fit the backbone (nothing matches, keys missing, a
    layout for another kind of backbone)."""


@dataclass(frozen=True)
class LoadReport:
    """What `load_pretrained` did.

    Attributes:
        source: the URI or path it was given.
        path: the file read.
        loaded: model tensors set from the file.
        missing: model keys left at their initialisation (only optional ones: DCN offsets,
            SSD's extra layers, L2Norm and, where the file lacks them, fc6/fc7).
        unexpected: file keys not used (classifier weights are dropped without report).
    """

    source: str
    path: Path
    loaded: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]


def is_uri(source: str | os.PathLike) -> bool:
    """Whether source names weights by URI (``scheme://...``) rather than by path."""
    return isinstance(source, str) and bool(_URI.match(source))


def cache_dir() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), where downloads go."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve(source: str | os.PathLike, *, download: bool = True) -> Path:
    """The local file of a backbone's weights.

    A path is taken as it is. A URI of `SOURCES` is looked for by file name in
    ``$DET_WEIGHTS_DIR`` (when set), then in torch.hub's cache (`cache_dir`); else it is
    downloaded into that cache and its SHA-256 checked against the prefix in its name.

    Args:
        source: a URI of SOURCES (e.g. "open-mmlab://resnet50_caffe") or a file path.
        download: whether a file found nowhere may be fetched.

    Returns:
        The file's path.

    Raises:
        WeightsNotFoundError: no file at a path; an unknown URI; a file found nowhere that
            may not be, or could not be, downloaded (offline, or a checksum mismatch). The
            message names the file, its URL and where to put it.
    """
    if not is_uri(source):
        path = Path(source)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"backbone weights: no file at {path}; give the path of a weights file, a URI "
                f"of {', '.join(SOURCES)}, or none"
            )
        return path
    entry = SOURCES.get(source)
    if entry is None:
        raise WeightsNotFoundError(
            f"backbone weights: unknown URI {source!r}; known: {', '.join(SOURCES)} (or give a "
            "file path)"
        )
    folders = [Path(os.environ[WEIGHTS_DIR_ENV])] if os.environ.get(WEIGHTS_DIR_ENV) else []
    folders.append(cache_dir())
    for folder in folders:
        for name in (entry.file_name, *entry.other_names):
            if (folder / name).is_file():
                return folder / name
    target = cache_dir() / entry.file_name
    if len(folders) > 1:
        places = f"{folders[0] / entry.file_name} (${WEIGHTS_DIR_ENV}) or {target}"
    else:
        places = f"{target} (torch.hub's cache) or into a folder named by ${WEIGHTS_DIR_ENV}"
    advice = (
        f"backbone weights {source}: {entry.file_name} was not found; download {entry.url} "
        f"and save it as {places}, or pass the file's path"
    )
    return download_to_cache(
        entry.url, target, sha256_prefix=entry.sha256_prefix, download=download, advice=advice
    )


def download_to_cache(
    url: str,
    target: Path,
    *,
    sha256_prefix: str | None = None,
    download: bool = True,
    advice: str,
) -> Path:
    """Downloads ``url`` to ``target`` (in torch.hub's cache), kept only when its SHA-256
    starts with ``sha256_prefix`` (when given).

    Raises:
        WeightsNotFoundError: ``download`` is False or the download failed: ``advice`` (what
            the file is, where to get it, where to put it) and the reason.
    """
    if not download:
        raise WeightsNotFoundError(f"{advice} (downloading is off)")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes a temporary file beside the target and moves it there only when its
        # SHA-256 starts with the prefix.
        download_url_to_file(url, str(target), hash_prefix=sha256_prefix)
    except (urllib.error.URLError, OSError, RuntimeError, ValueError) as e:
        raise WeightsNotFoundError(f"{advice} (download failed: {e})") from e
    return target


def load_pretrained(
    backbone: nn.Module, source: str | os.PathLike, *, download: bool = True
) -> LoadReport:
    """Loads a backbone's ImageNet weights: a URI of SOURCES or a file.

    Files: a state dict saved with torch.save in any layout of the module docstring (also
    wrapped under "state_dict" or "model", or a detector's whose backbone keys start with
    "backbone."), or a Detectron ``.pkl`` (`load_detectron`). Every shape is checked before
    anything is copied.

    Args:
        backbone: a ResNet or VGG16SSD.
        source: see `resolve`.
        download: whether a URI's file found nowhere may be fetched.

    Returns:
        The LoadReport.

    Raises:
        WeightsNotFoundError: see `resolve`.
        WeightsMismatchError: the file fits nothing of the backbone, leaves keys other than
            the optional ones missing, or a URI's layout is for another backbone (GN weights
            into a BN ResNet, VGG weights into a ResNet); the message names the file and keys.
    """
    if not isinstance(backbone, (ResNet, VGG16SSD)):
        raise TypeError(
            f"load_pretrained: backbone must be a ResNet or VGG16SSD; got {type(backbone)}"
        )
    entry = SOURCES.get(str(source)) if is_uri(source) else None
    if entry is not None:
        _check_layout(entry, backbone)
    path = resolve(source, download=download)
    try:
        if path.suffix == ".pkl":
            missing, unexpected = load_detectron(backbone, path)
        else:
            state = _read_state_dict(path, backbone)
            # Refused before anything is copied: the keys the file lacks.
            model_keys = _model_keys(backbone)
            _refuse_incomplete(
                path,
                backbone,
                [k for k in model_keys if k not in state],
                sorted(k for k in state if k not in model_keys and not _CLASSIFIER.match(k)),
            )
            missing, unexpected = load_torchvision(backbone, state)
    except WeightsMismatchError:
        raise
    except ValueError as e:  # a shape that does not fit
        raise WeightsMismatchError(f"backbone weights {path}: {e}") from e
    _refuse_incomplete(path, backbone, missing, unexpected)
    return LoadReport(
        source=str(source),
        path=path,
        loaded=len(_model_keys(backbone)) - len(missing),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
    )


def _model_keys(backbone: nn.Module) -> list[str]:
    return [k for k in backbone.state_dict() if not k.endswith("num_batches_tracked")]


def _refuse_incomplete(
    path: Path, backbone: nn.Module, missing: list[str], unexpected: list[str]
) -> None:
    """Raises WeightsMismatchError when the file fits nothing, or leaves model keys other
    than the optional ones missing."""
    optional = _OPTIONAL_MISSING[type(backbone)]
    required = [key for key in missing if not optional.search(key)]
    total = len(_model_keys(backbone))
    if len(missing) < total and not required:
        return
    what = "fits none of" if len(missing) == total else f"leaves {len(required)} keys missing from"
    raise WeightsMismatchError(
        f"backbone weights {path} {what} the {type(backbone).__name__} (missing e.g. "
        f"{(required or missing)[:5]}; file keys not used e.g. {unexpected[:5]}); is the file "
        "for this backbone (depth, groups, norm)?"
    )


def _check_layout(entry: WeightSource, backbone: nn.Module) -> None:
    """Refuses a known source whose layout is for another kind of backbone."""
    if entry.layout == "vgg16":
        fits = isinstance(backbone, VGG16SSD) and backbone.norm is None
    elif isinstance(backbone, ResNet):
        fits = (entry.layout == "resnet-gn") == (backbone.norm == "GN")
    else:
        fits = False
    if not fits:
        norm = getattr(backbone, "norm", None)
        archs = " or ".join(entry.archs) + (" with GN" if entry.layout == "resnet-gn" else "")
        raise WeightsMismatchError(
            f"backbone weights {entry.uri} ({entry.file_name}, layout {entry.layout!r}) are "
            f"for {archs}, not a {type(backbone).__name__} with norm {norm!r}"
        )


def _read_state_dict(path: Path, backbone: nn.Module) -> dict[str, Tensor]:
    """The backbone's part of a torch.save file, with v0.6's GN names made ours."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
        raise WeightsMismatchError(
            f"backbone weights {path} cannot be read as tensors and plain data (corrupt, "
            f"truncated, or holding other objects): {e}"
        ) from e
    for wrapper in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
    if not isinstance(data, Mapping):
        raise WeightsMismatchError(
            f"backbone weights {path} hold a {type(data).__name__}, not a state dict"
        )
    state = {str(k).removeprefix("module."): v for k, v in data.items() if isinstance(v, Tensor)}
    if any(k.startswith("backbone.") for k in state):  # a detector's checkpoint
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    if isinstance(backbone, ResNet):
        state = {_GN_NAME.sub(r"\1bn\2", k): v for k, v in state.items()}
    return state
