"""Precomputed proposal files (for Fast R-CNN): read in the formats in use, written in three
that hold data only.

A file maps each image to a float array [K, 4 | 5] of proposals (x1, y1, x2, y2[, score],
pixels of the original image), best first. Formats read:

- a dict image_id -> array as JSON (``.json``, ids as keys), numpy's ``.npz`` (ids as
  member names) or saved by torch (``.pt``): what :func:`save_proposals` and
  ``python -m det_engine.test rpn ... --proposals-out FILE`` write;
- a list of arrays, one per image in the dataset's order (the order of the annotation
  file's ``images``): the 2019 mmdetection proposal ``.pkl`` files;
- a dict or list pickled (``.pkl``) or saved as a numpy object array (``.npy``) by older
  tools.

Pickles and object arrays are read through det-io's allow-list unpickler: numpy arrays and
builtin containers load, a file naming anything else (a pickle written to run code when
opened) is refused before it runs. Nothing here writes a pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import det_io

SUFFIXES = (".pkl", ".pickle", ".json", ".npy", ".npz", ".pt", ".pth")
# What save_proposals writes: formats that cannot carry code.
WRITTEN_SUFFIXES = (".json", ".npz", ".pt")


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return det_io.load(path, what="proposals file")
    if suffix == ".json":
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"proposals file {path} is not valid JSON: {err}") from err
    if suffix == ".npy":
        data = det_io.load_npy(path, what="proposals file")
        return data.item() if data.dtype == object and data.shape == () else list(data)
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as members:
                return {name: members[name] for name in members.files}
        except ValueError as err:  # object members, or not an .npz
            raise ValueError(f"proposals file {path}: unreadable .npz ({err})") from err
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
    """Writes proposals keyed by image id as JSON (``.json``), numpy ``.npz`` or torch ``.pt``.

    None of these can run code when read (JSON is text, ``.npz`` is read with
    ``allow_pickle=False``, ``.pt`` with ``weights_only=True``); no pickle is written.

    Args:
        path: the file; its suffix picks the format. ``.json`` rounds to 1/1000 pixel;
            ``.npz`` and ``.pt`` keep float32 exactly.
        proposals: image_id -> array or Tensor[K, 5] (x1, y1, x2, y2, score, original image
            pixels).

    Returns:
        The path written (parents created).

    Raises:
        ValueError: another suffix (``.pkl`` named: pickles are only read), or an array that
            is not [K, 5].
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITTEN_SUFFIXES:
        raise ValueError(
            f"proposals file {path}: expected a {', '.join(WRITTEN_SUFFIXES)} name, got "
            f"'{suffix}' (pickles are read, for the 2019 files, but no longer written)"
        )
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
    elif suffix == ".npz":
        with open(path, "wb") as f:  # an open file: np.savez would append ".npz" to a name
            np.savez(f, **{str(k): v for k, v in arrays.items()})
    else:
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, path)
    return path
