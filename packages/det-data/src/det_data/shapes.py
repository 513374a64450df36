"""A built-in COCO-format dataset of circles, squares and triangles, generated on first use.

It needs no download: ``prepare()`` draws it deterministically (a fixed seed) into a cache
folder, ``dataset()`` loads it through the same CocoDataset code path as COCO. Images are
160..256 pixels a side on textured backgrounds, with 1..5 shapes of varied size, colour and
rotation that may overlap. An object that nothing covers has a polygon mask; one partly
covered by a later shape has the RLE of its visible pixels (so both mask kinds are
exercised), and its box is the box of those pixels. No object is left with under half of
itself visible.

Layout under the root: ``annotations/instances_{train,val}.json`` and ``{train,val}/*.jpg``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from det_data.coco import CocoDataset
from det_data.detection_dataset import Transform

CLASSES = ("circle", "square", "triangle")
SPLITS = {"train": 400, "val": 100}
VERSION = "v1"
SEED = 2019


def default_root() -> Path:
    """``$DET_DATA_HOME/shapes/v1`` or ``~/.cache/det/shapes/v1``."""
    base = os.environ.get("DET_DATA_HOME")
    home = Path(base) if base else Path.home() / ".cache" / "det"
    return home / "shapes" / VERSION


def _is_complete(root: Path) -> bool:
    return all((root / "annotations" / f"instances_{s}.json").is_file() for s in SPLITS)


def prepare(root: str | Path | None = None, splits: dict[str, int] | None = None) -> Path:
    """The dataset's root folder, generated there first when it is not complete.

    Generation writes into a temporary sibling folder and renames it into place, so an
    interrupted run or a concurrent one never leaves a half-written dataset.

    Args:
        root: where the dataset lives; default :func:`default_root`.
        splits: images per split; default 400 train and 100 val.

    Returns:
        The root folder.
    """
    root = Path(root) if root is not None else default_root()
    splits = dict(SPLITS if splits is None else splits)
    if _is_complete(root):
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} exists but holds no complete shapes dataset; delete it and call prepare()"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".shapes-", dir=root.parent))
    try:
        for index, (split, count) in enumerate(sorted(splits.items())):
            _write_split(tmp, split, count, seed=(SEED, index))
        if root.exists():
            root.rmdir()
        os.rename(tmp, root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_complete(root):  # another process finished first
            return root
        raise
    return root


def dataset(
    split: str = "train",
    train: bool | None = None,
    transforms: Transform | None = None,
    root: str | Path | None = None,
    proposals: str | Path | None = None,
    with_masks: bool | None = None,
    max_proposals: int | None = None,
    exclude_ids: Collection[int] = (),
) -> CocoDataset:
    """The shapes split as a CocoDataset (generated first when needed).

    Args:
        split: "train" or "val".
        train: training filters on; default True for "train", False otherwise.
        transforms: the sample transforms.
        root: as for :func:`prepare`.
        proposals: a proposals file for Fast R-CNN (see :mod:`det_data.proposals`).
        with_masks: load the masks; None: yes (every object has one).
        max_proposals: proposals kept per image, or None for all.
        exclude_ids: image ids left out (see CocoDataset).
    """
    if split not in SPLITS:
        raise ValueError(f"shapes.dataset: split must be one of {sorted(SPLITS)}, got {split!r}")
    root = prepare(root)
    return CocoDataset(
        root / "annotations" / f"instances_{split}.json",
        root / split,
        train=split == "train" if train is None else train,
        transforms=transforms,
        proposals=proposals,
        with_masks=with_masks,
        max_proposals=max_proposals,
        exclude_ids=exclude_ids,
    )


def _polygon(kind: int, cx: float, cy: float, size: float, angle: float) -> list[float]:
    if kind == 0:
        n, radius = 24, size / 2
    elif kind == 1:
        n, radius = 4, size / 2 * math.sqrt(2) * 0.75  # corners of a square of side 0.75 size
    else:
        n, radius = 3, size / 2 * 1.1
    t = angle + 2 * math.pi * np.arange(n) / n
    xs, ys = cx + radius * np.cos(t), cy + radius * np.sin(t)
    return np.round(np.stack([xs, ys], 1).ravel(), 2).tolist()


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 215, 3).astype(np.float32)
    fx, fy = rng.uniform(-0.3, 0.3, 2)
    waves = np.sin(fx * xx + fy * yy + rng.uniform(0, 6.3))[..., None]
    amp = rng.uniform(10, 40, 3).astype(np.float32)
    noise = rng.normal(0, rng.uniform(3, 15), (h, w, 1)).astype(np.float32)
    return base + amp * waves + noise


def _draw_image(rng: np.random.Generator, image_id: int, file_name: str):
    h, w = (int(v) for v in rng.integers(160, 257, 2))
    canvas = _texture(rng, h, w)
    objects: list[tuple[int, list[float], np.ndarray]] = []
    for _ in range(int(rng.integers(1, 6))):
        kind = int(rng.integers(0, 3))
        for _try in range(10):
            size = float(rng.uniform(16, 0.45 * min(h, w)))
            margin = size * 0.8
            cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
            poly = _polygon(kind, cx, cy, size, float(rng.uniform(0, 2 * math.pi)))
            full = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], h, w)))
            # keep every earlier object at least half visible
            covered = full.astype(bool)
            if all((m.astype(bool) & ~covered).sum() >= 0.5 * m.sum() for _, _, m in objects):
                objects.append((kind, poly, full))
                break
    later = np.zeros((h, w), dtype=bool)
    visible = []
    for _, _, full in reversed(objects):
        visible.append(full.astype(bool) & ~later)
        later |= full.astype(bool)
    visible.reverse()
    anns = []
    for (kind, poly, full), vis in zip(objects, visible, strict=True):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        shade = rng.uniform(-25, 25, 3).astype(np.float32)
        canvas[full.astype(bool)] = colour + shade * rng.random((int(full.sum()), 1))
        ys, xs = np.nonzero(vis)
        x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        if vis.sum() == full.sum():
            segm: object = [poly]
        else:
            rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
            segm = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        anns.append(
            {
                "image_id": image_id,
                "category_id": kind + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": int(vis.sum()),
                "iscrowd": 0,
                "segmentation": segm,
            }
        )
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    info = {"id": image_id, "file_name": file_name, "width": w, "height": h}
    return image, info, anns


def _write_split(root: Path, split: str, count: int, seed: tuple[int, int]) -> None:
    (root / split).mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        rng = np.random.default_rng([*seed, i])
        file_name = f"{i + 1:06d}.jpg"
        image, info, anns = _draw_image(rng, i + 1, file_name)
        image.save(root / split / file_name, quality=90)
        images.append(info)
        for ann in anns:
            ann["id"] = len(annotations) + 1
            annotations.append(ann)
    data = {
        "info": {"description": f"det_data.shapes {VERSION}, {split}", "version": VERSION},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
