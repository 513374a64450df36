"""A model and its run record from a training checkpoint.

Every checkpoint the project writes (``python -m det_engine.train``, ``det_engine.quickstart``,
``det_engine.trainer.Trainer``) holds the model's weights under "model" and the `RunConfig` of
its run, as plain data, under "run". `model_from_checkpoint` rebuilds the model from that
record and loads the weights; test, demo, export, the quickstart's proposals for Fast R-CNN
and `Detector.from_checkpoint` all go through it.

>>> model, run = model_from_checkpoint("work_dirs/quickstart_faster_rcnn/iter_00001850.pth")
>>> run.name, run.class_names
('quickstart_faster_rcnn', ('circle', 'square', 'triangle'))
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from det_models.builder import build_model
from det_models.config import RunConfig, from_plain


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, foreign, or without a run record."""


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint file's dict, read with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is corrupt, truncated, or holds objects other than tensors
            and plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, OSError) as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read (corrupt, truncated, or holding objects "
            f"other than tensors and plain data): {e}"
        ) from e
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, not a dict")
    return data


def run_config_of(data: dict[str, Any], path: str | os.PathLike) -> RunConfig:
    """The RunConfig stored in a checkpoint dict read from ``path``.

    Raises:
        CheckpointError: no run record (a checkpoint written before run records, or not one
            of ours), or one this version cannot read.
    """
    stored = data.get("run")
    if stored is None:
        raise CheckpointError(
            f"checkpoint {path} holds no run record (found keys {sorted(map(str, data))[:8]}); "
            "checkpoints of python -m det_engine.train and det_engine.quickstart have one. "
            "For other weights build the model (det_models.zoo.build) and load its state dict"
        )
    try:
        run = from_plain(stored)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: its run record cannot be read: {e}") from e
    if not isinstance(run, RunConfig):
        raise CheckpointError(f"checkpoint {path}: its run record is a {type(run).__name__}")
    return run


def model_from_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu"
) -> tuple[nn.Module, RunConfig]:
    """The model of a training checkpoint, with its weights, in eval mode, and its run record.

    Args:
        path: a checkpoint written by det_engine (train, quickstart, Trainer).
        map_location: where the weights are loaded (default the CPU).

    Returns:
        ``(model, run)``: the detector built from ``run.model``; the RunConfig (its data
        pipeline, class names, schedule, zoo row or recipe).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, no run record, or weights that do not fit the model
            (the message names the first keys that differ).
    """
    data = read_checkpoint(path, map_location)
    run = run_config_of(data, path)
    state = data.get("model")
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds no model weights")
    model = build_model(run.model)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of another shape
        raise CheckpointError(f"the weights in {path} do not fit its run {run.name}: {e}") from e
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"the weights in {path} do not fit the model of its run {run.name}: missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval(), run
