"""COCO-format detection datasets read through pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from det_data.detection_dataset import DetectionDataset, ImageRecord, Transform
from det_data.proposals import load_proposals

__all__ = ["CocoDataset", "load_proposals"]


def _load_json(ann_file: Path) -> dict[str, Any]:
    if not ann_file.is_file():
        raise FileNotFoundError(
            f"annotation file {ann_file} does not exist; pass the path of a COCO-format JSON file"
        )
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"annotation file {ann_file} is not valid JSON (truncated or malformed?): {err}"
        ) from err
    if not isinstance(data, dict):
        raise ValueError(f"annotation file {ann_file}: expected a JSON object at the top level")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"annotation file {ann_file}: expected a list under '{key}'")
    data.setdefault("annotations", [])
    for i, ann in enumerate(data["annotations"]):
        missing = [k for k in ("id", "image_id", "category_id", "bbox") if k not in ann]
        if missing:
            raise ValueError(
                f"annotation file {ann_file}: annotation #{i} (id {ann.get('id')}) lacks {missing}"
            )
    return data


class CocoDataset(DetectionDataset):
    """A COCO-format detection dataset (COCO 2017 or a user's own), as the zoo used it.

    Category ids (sorted) map to contiguous labels 0..C-1 and back. Boxes become
    x1, y1, x2, y2 with x2 = x + w, clipped to the image; boxes with w or h < 1 (or area
    <= 0) and objects whose polygons all have fewer than 3 points are dropped, counted and
    reported once through ``warnings``. Crowd objects go to ``ignore_boxes``. Masks stay
    polygons/RLE in ``target["masks"]`` (an InstanceMasks) until a transform needs pixels.

    Args:
        ann_file: the COCO JSON file.
        img_dir: the folder holding the images named by ``file_name``.
        train: drop images with no usable (non-crowd) object or smaller than min_size.
        transforms: ``t(image, meta, target) -> (image, meta, target)``, or None.
        min_size: shorter image side below which training drops an image, pixels.
        proposals: optional proposals file, see :mod:`det_data.proposals` (a list-form file
            follows the order of the JSON's ``images``).
        with_masks: keep segmentations; None keeps them when every object has one.
        max_proposals: proposals kept per image (the file's first ones), or None for all.
        exclude_ids: image ids left out before their annotations are read (the images a
            :func:`det_data.check.check_coco` report found bad).
    """

    def __init__(
        self,
        ann_file: str | Path,
        img_dir: str | Path,
        train: bool = True,
        transforms: Transform | None = None,
        min_size: int = 32,
        proposals: str | Path | None = None,
        with_masks: bool | None = None,
        max_proposals: int | None = None,
        exclude_ids: Collection[int] = (),
    ) -> None:
        self.ann_file = Path(ann_file)
        self.img_dir = Path(img_dir)
        self.train = train
        self.transforms = transforms
        self.min_size = min_size
        data = _load_json(self.ann_file)
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()

        cats = sorted(data["categories"], key=lambda c: c["id"])
        self.cat_ids = tuple(int(c["id"]) for c in cats)
        self.classes = tuple(str(c.get("name", c["id"])) for c in cats)
        self.cat_id_to_label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.label_to_cat_id = dict(enumerate(self.cat_ids))

        known = set(self.coco.imgs)
        image_ids = sorted(known - set(exclude_ids))
        for ann in data["annotations"]:
            if ann["image_id"] not in known:
                raise ValueError(
                    f"annotation file {self.ann_file}: annotation id {ann['id']} refers to "
                    f"image id {ann['image_id']}, which is not under 'images'"
                )
        if with_masks is None:
            kept = [ann for ann in data["annotations"] if ann["image_id"] not in exclude_ids]
            with_masks = bool(kept) and all(ann.get("segmentation") for ann in kept)
        self.with_masks = with_masks
        props = None
        if proposals is not None:
            file_order = [img["id"] for img in data["images"]]
            props = load_proposals(proposals, file_order)

        self.num_dropped = 0
        self.num_clipped = 0
        records = []
        for image_id in image_ids:
            record = self._parse_image(image_id)
            if props is not None:
                if image_id not in props:
                    raise ValueError(
                        f"proposals file {proposals} has no entry for image id {image_id}"
                    )
                record.extra["proposals"] = props[image_id][:max_proposals]
            if train and (len(record.boxes) == 0 or min(record.width, record.height) < min_size):
                continue
            records.append(record)
        self.records = records
        if self.num_dropped or self.num_clipped:
            warnings.warn(
                f"{self.ann_file}: dropped {self.num_dropped} degenerate objects (box w or h < 1, "
                f"area <= 0 or no polygon of 3+ points); clipped {self.num_clipped} boxes "
                "reaching more than 1 pixel outside their image",
                stacklevel=2,
            )

    def _parse_image(self, image_id: int) -> ImageRecord:
        info = self.coco.imgs[image_id]
        for key in ("file_name", "width", "height"):
            if key not in info:
                raise ValueError(
                    f"annotation file {self.ann_file}: image id {image_id} lacks '{key}'"
                )
        width, height = int(info["width"]), int(info["height"])
        boxes, labels, ignore, segms = [], [], [], []
        for ann in self.coco.imgToAnns.get(image_id, []):
            cat_id = ann["category_id"]
            if cat_id not in self.cat_id_to_label:
                raise ValueError(
                    f"annotation file {self.ann_file}: annotation id {ann['id']} (image id "
                    f"{image_id}) has category_id {cat_id}, not among the categories "
                    f"{list(self.cat_ids)}"
                )
            x, y, w, h = (float(v) for v in ann["bbox"])
            x1, y1 = max(x, 0.0), max(y, 0.0)
            x2, y2 = min(x + w, float(width)), min(y + h, float(height))
            if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
                self.num_clipped += 1
            if x2 - x1 < 1 or y2 - y1 < 1 or ann.get("area", 1) <= 0:
                self.num_dropped += 1
                continue
            if ann.get("iscrowd", 0):
                ignore.append((x1, y1, x2, y2))
                continue
            segm = ann.get("segmentation")
            if self.with_masks and isinstance(segm, list):
                segm = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
                if not segm:
                    self.num_dropped += 1
                    continue
            boxes.append((x1, y1, x2, y2))
            labels.append(self.cat_id_to_label[cat_id])
            segms.append(segm)
        return ImageRecord(
            image_id=image_id,
            file=self.img_dir / info["file_name"],
            width=width,
            height=height,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64),
            ignore_boxes=np.asarray(ignore, dtype=np.float32).reshape(-1, 4),
            segms=segms if self.with_masks else None,
            source=str(self.ann_file),
        )
