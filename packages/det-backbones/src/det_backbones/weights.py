"""Loading ImageNet weights the user already has: torchvision checkpoints, Detectron .pkl.

Nothing is downloaded. Both loaders check every shape before copying anything, and return
the model keys left at their initialisation (`missing`) and the checkpoint keys not used
(`unexpected`). Classifier weights (torchvision `fc.*` / `classifier.*`, Detectron
`fc1000_*` / `pred_*`) and BN step counters are dropped without being reported.

Detectron (caffe-style) conventions: the MSRA ResNets expect BGR images in 0..255 with the
per-channel mean (102.9801, 115.9465, 122.7717) subtracted and no division by a standard
deviation. Their BN layers were folded into an affine map y = x * s + b (`*_bn_s`, `*_bn_b`);
they load into the norm layers as weight = s, bias = b, running_mean = 0 and
running_var = 1 - eps, so that the layer computes exactly x * s + b.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import det_io
from det_backbones.norms import FrozenBatchNorm2d, is_batch_norm
from det_backbones.resnet import ResNet
from det_backbones.vgg_ssd import VGG16SSD

_CLASSIFIER = re.compile(r"^(fc|classifier)\.")
# Detectron's own ResNet has no stem conv bias, so it never used the MSRA model's conv1_b.
_DETECTRON_IGNORED = re.compile(r"^(fc1000_[wb]|pred_[wb]|conv1_b)$|_momentum$")
_DETECTRON_BRANCH2 = {"a": 1, "b": 2, "c": 3}


def load_torchvision(
    model: nn.Module, state_dict_or_path: Mapping[str, Tensor] | str | os.PathLike
) -> tuple[list[str], list[str]]:
    """Loads a torchvision resnet*/resnext* (into ResNet) or vgg16 (into VGG16SSD) state dict.

    Keys map one to one (see resnet.py and vgg_ssd.py). For VGG16SSD only conv1_1..conv5_3
    come from the checkpoint: fc6, fc7, the extra layers and l2_norm keep their initialisation.

    Args:
        model: a ResNet or VGG16SSD.
        state_dict_or_path: the state dict, or the path of a file saved with torch.save
            (a state dict, or a dict holding one under "state_dict").

    Returns:
        (missing, unexpected): model keys not in the checkpoint, checkpoint keys not used.
    """
    if not isinstance(model, (ResNet, VGG16SSD)):
        raise TypeError(f"load_torchvision: model must be a ResNet or VGG16SSD; got {type(model)}")
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        path = Path(state_dict_or_path)
        _check_file(path, "torchvision checkpoint")
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    else:
        state_dict = state_dict_or_path
    if isinstance(state_dict.get("state_dict"), Mapping):
        state_dict = state_dict["state_dict"]
    tensors = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if _CLASSIFIER.match(key) or key.endswith("num_batches_tracked"):
            continue
        tensors[key] = (key, value)
    return _copy_into(model, tensors)


def load_detectron(model: ResNet, path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Loads a Detectron Caffe2 ImageNet backbone (.pkl: R-50.pkl, R-101.pkl, X-101-*.pkl,
    R-50-GN.pkl, ...) into a ResNet; use style="caffe" for the MSRA ResNets.

    Blob names map as: conv1_w -> conv1.weight; res_conv1_bn_s/_b (or conv1_gn_s/_b) -> bn1;
    res{s}_{i}_branch2{a,b,c}_w -> layer{s-1}.{i}.conv{1,2,3}.weight with _bn_s/_bn_b (or
    _gn_s/_gn_b) -> bn{1,2,3}; res{s}_{i}_branch1_w -> layer{s-1}.{i}.downsample.0.weight with
    its norm -> downsample.1. See the module docstring for the input conventions.

    Args:
        model: a ResNet.
        path: the .pkl file (a dict of numpy arrays, or one holding them under "blobs"),
            read through det-io's allow-list unpickler (no code in the file runs).

    Returns:
        (missing, unexpected): model keys not in the file, blob names not used.

    Raises:
        det_io.UnsafePickleError: the file names a global other than numpy's arrays and
            builtin containers (a pickle that would run code when opened).
    """
    if not isinstance(model, ResNet):
        raise TypeError(f"load_detectron: model must be a ResNet; got {type(model)}")
    path = Path(path)
    _check_file(path, "Detectron .pkl")
    # Through det-io's allow-list: a downloaded .pkl that names anything but arrays and
    # containers is refused before it can run code (latin1: Detectron wrote Python 2 pickles).
    blobs = det_io.load(path, what="Detectron weights", encoding="latin1")
    if not isinstance(blobs, Mapping):
        raise ValueError(
            f"Detectron weights {path}: expected a dict of arrays (or one under 'blobs'), "
            f"got {type(blobs).__name__}"
        )
    if isinstance(blobs.get("blobs"), Mapping):
        blobs = blobs["blobs"]
    modules = dict(model.named_modules())
    tensors: dict[str, tuple[str, Tensor]] = {}
    unexpected = []
    for name, array in blobs.items():
        if _DETECTRON_IGNORED.search(name):
            continue
        target = _detectron_target(name)
        if target is None:
            unexpected.append(name)
            continue
        module_name, field = target
        value = torch.from_numpy(np.ascontiguousarray(array))
        if field == "scale":
            tensors[f"{module_name}.weight"] = (name, value)
            norm = modules.get(module_name)
            if isinstance(norm, FrozenBatchNorm2d) or is_batch_norm(norm):
                # Statistics that make the layer compute x * scale + bias exactly.
                tensors[f"{module_name}.running_mean"] = (name, torch.zeros_like(value))
                tensors[f"{module_name}.running_var"] = (name, torch.full_like(value, 1 - norm.eps))
        else:
            tensors[f"{module_name}.{field}"] = (name, value)
    missing, unknown = _copy_into(model, tensors)
    return missing, sorted(unexpected + unknown)


def _detectron_target(name: str) -> tuple[str, str] | None:
    """(module name, "weight" | "scale" | "bias") for a Detectron blob name, or None."""
    if name == "conv1_w":
        return "conv1", "weight"
    match = re.fullmatch(r"(?:res_conv1_bn|conv1_gn)_([sb])", name)
    if match:
        return "bn1", "scale" if match[1] == "s" else "bias"
    match = re.fullmatch(r"res(\d)_(\d+)_branch(1|2[abc])(_bn|_gn)?_([wsb])", name)
    if not match or not 2 <= int(match[1]) <= 5:
        return None
    stage, block, branch, norm, kind = match.groups()
    prefix = f"layer{int(stage) - 1}.{block}"
    if branch == "1":
        conv, norm_name = f"{prefix}.downsample.0", f"{prefix}.downsample.1"
    else:
        index = _DETECTRON_BRANCH2[branch[1]]
        conv, norm_name = f"{prefix}.conv{index}", f"{prefix}.bn{index}"
    if norm is None:
        return (conv, "weight") if kind == "w" else None
    if kind == "s":
        return norm_name, "scale"
    return (norm_name, "bias") if kind == "b" else None


def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path}. Download it once (nothing is fetched at run time) "
            f"and pass its path."
        )


def _copy_into(
    model: nn.Module, tensors: Mapping[str, tuple[str, Tensor]]
) -> tuple[list[str], list[str]]:
    """Copies tensors (model key -> (source key, value)) into the model's state after
    checking every shape; returns (missing, unexpected)."""
    state = model.state_dict()
    unexpected = sorted({source for key, (source, _) in tensors.items() if key not in state})
    for key, (source, value) in tensors.items():
        if key in state and tuple(value.shape) != tuple(state[key].shape):
            origin = key if source == key else f"{source} (for {key})"
            raise ValueError(
                f"checkpoint key {origin} has shape {tuple(value.shape)} but the model's "
                f"{key} has shape {tuple(state[key].shape)}; is the checkpoint for this "
                f"architecture?"
            )
    with torch.no_grad():
        for key, (_, value) in tensors.items():
            if key in state:
                state[key].copy_(value)
    missing = sorted(
        key for key in state if key not in tensors and not key.endswith("num_batches_tracked")
    )
    return missing, unexpected
