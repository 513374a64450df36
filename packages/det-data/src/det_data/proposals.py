"""Precomputed proposal files (for Fast R-CNN): read in the formats in use, written in one.

A file maps each image to a float array [K, 4 | 5] of proposals (x1, y1, x2, y2[, score],
pixels of the original image), best first. Formats read:

- a dict image_id -> array, pickled (``.pkl``), as JSON (``.json``, ids as keys), as a
  numpy object array (``.npy``) or saved by torch (``.pt``); what :func:`save_proposals`
  and ``python -m det_engine.test rpn ... --proposals-out FILE`` write;
- a list of arrays, one per image in the dataset's order (the order of the annotation
  file's ``images``): the 2019 mmdetection proposal ``.pkl`` files.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

SUFFIXES = (".pkl", ".pickle", ".json", ".npy", ".pt", ".pth")


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        with open(path, "rb") as f:
            return pickle.load(f)
    if suffix == ".json":
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"proposals file {path} is not valid JSON: {err}") from err
    if suffix == ".npy":
        data = np.load(path, allow_pickle=True)
        return data.item() if data.dtype == object and data.shape == () else list(data)
    if suffix in (".pt", ".pth"):
        return torch.load(path, map_location="cpu", weights_only=True)
    raise ValueError(
        f"proposals file {path}: expected one of {', '.join(SUFFIXES)}, got '{suffix}'"
    )


def _key(image_id: Any, known: dict[str, Any]) -> Any:
    """The dataset's image id of a file's key (JSON keys are strings)."""
    return known.get(str(image_id), image_id)


def load_proposals(path: str | Path, image_ids: Sequence[Any]) -> dict[Any, np.ndarray]:
    """Precomputed proposals keyed by image id.

    Args:
        path: the proposals file (see the module's formats).
        image_ids: every image id of the annotation file in its order (what a list-form
            file follows).

    Returns:
        dict image_id -> float32 ndarray[K, 4 | 5].

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown format, a list whose length is not the number of images, or
            an array that is not [K, 4] or [K, 5]; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"proposals file {path} does not exist")
    data = _read(path)
    if isinstance(data, Mapping):
        known = {str(i): i for i in image_ids}
        items = {_key(k, known): v for k, v in data.items()}
    elif isinstance(data, list | tuple):
        if len(data) != len(image_ids):
            raise ValueError(
                f"proposals file {path} holds {len(data)} arrays but the annotation file has "
                f"{len(image_ids)} images; a list must follow the annotation file's image order"
            )
        items = dict(zip(image_ids, data, strict=True))
    else:
        raise ValueError(f"proposals file {path}: expected a list or dict, got {type(data)}")
    out = {}
    for image_id, value in items.items():
        arr = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value)
        arr = arr.astype(np.float32).reshape(-1, arr.shape[-1] if arr.ndim > 1 else 4)
        if arr.shape[1] not in (4, 5):
            raise ValueError(
                f"proposals file {path}: image id {image_id} has shape {arr.shape}, "
                "expected [K, 4] or [K, 5]"
            )
        out[image_id] = arr
    return out


def save_proposals(path: str | Path, proposals: Mapping[Any, Any]) -> Path:
    """Writes proposals keyed by image id, as a pickle (``.pkl``) or JSON (``.json``) file.

    Args:
        path: the file; its suffix picks the format.
        proposals: image_id -> array or Tensor[K, 5] (x1, y1, x2, y2, score, original image
            pixels).

    Returns:
        The path written (parents created).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".pkl", ".pickle", ".json"):
        raise ValueError(f"proposals file {path}: expected a .pkl or .json name, got '{suffix}'")
    arrays = {}
    for image_id, value in proposals.items():
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise ValueError(
                f"proposals: image id {image_id} has shape {arr.shape}, expected [K, 5]"
            )
        arrays[image_id] = arr
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        text = json.dumps(
            {str(k): np.round(v.astype(np.float64), 3).tolist() for k, v in arrays.items()}
        )
        path.write_text(text + "\n")
    else:
        with open(path, "wb") as f:
            pickle.dump(arrays, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path
