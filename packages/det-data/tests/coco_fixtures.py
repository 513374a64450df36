"""A small COCO-format dataset written into a temporary folder for the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def _rle_of_rect(h: int, w: int, x1: int, y1: int, x2: int, y2: int) -> dict:
    m = np.zeros((h, w), dtype=np.uint8, order="F")
    m[y1:y2, x1:x2] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def write_coco(root: Path) -> tuple[Path, Path]:
    """Five images exercising the filters; returns (ann_file, img_dir).

    image 1 (64x48): two objects (label of cat 7 and cat 1) with polygon masks, one crowd.
    image 2 (40x60, portrait): one object with a compressed RLE mask, one uncompressed RLE.
    image 3 (64x64): no annotation.
    image 4 (20x40): one object but smaller than min_size 32.
    image 5 (50x50): one degenerate box (w < 1) only.
    """
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    sizes = {1: (64, 48), 2: (40, 60), 3: (64, 64), 4: (20, 40), 5: (50, 50)}
    rng = np.random.default_rng(0)
    images = []
    for image_id, (w, h) in sizes.items():
        name = f"{image_id:06d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img_dir / name)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
    uncompressed = {"size": [60, 40], "counts": [60 * 5 + 10, 20, 40, 20, 60 * 40 * 2]}
    uncompressed["counts"][-1] = 60 * 40 - sum(uncompressed["counts"][:-1])
    anns = [
        {
            "id": 10,
            "image_id": 1,
            "category_id": 7,
            "bbox": [10, 5, 20, 30],
            "area": 600,
            "iscrowd": 0,
            "segmentation": [[10, 5, 30, 5, 30, 35, 10, 35]],
        },
        {
            "id": 11,
            "image_id": 1,
            "category_id": 1,
            "bbox": [40.5, 10, 15, 12.5],
            "area": 100,
            "iscrowd": 0,
            "segmentation": [[40.5, 10, 55.5, 10, 48, 22.5]],
        },
        {
            "id": 12,
            "image_id": 1,
            "category_id": 3,
            "bbox": [0, 30, 20, 18],
            "area": 300,
            "iscrowd": 1,
            "segmentation": _rle_of_rect(48, 64, 0, 30, 20, 48),
        },
        {
            "id": 20,
            "image_id": 2,
            "category_id": 3,
            "bbox": [5, 10, 20, 25],
            "area": 500,
            "iscrowd": 0,
            "segmentation": _rle_of_rect(60, 40, 5, 10, 25, 35),
        },
        {
            "id": 21,
            "image_id": 2,
            "category_id": 1,
            "bbox": [5, 10, 2, 20],
            "area": 40,
            "iscrowd": 0,
            "segmentation": uncompressed,
        },
        {
            "id": 40,
            "image_id": 4,
            "category_id": 1,
            "bbox": [2, 2, 10, 10],
            "area": 100,
            "iscrowd": 0,
            "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
        },
        {
            "id": 50,
            "image_id": 5,
            "category_id": 1,
            "bbox": [2, 2, 0.5, 10],
            "area": 5,
            "iscrowd": 0,
            "segmentation": [[2, 2, 2.5, 2, 2.5, 12, 2, 12]],
        },
    ]
    cats = [{"id": 7, "name": "seven"}, {"id": 1, "name": "one"}, {"id": 3, "name": "three"}]
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann_file, img_dir
