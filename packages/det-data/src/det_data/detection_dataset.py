"""The part every detection dataset shares: records in memory, image decoding, the
sample contract of docs/design.md, transforms and the aspect-ratio groups for the samplers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from det_data.image_io import read_image
from det_data.masks import InstanceMasks

Sample = tuple[Tensor, dict[str, Any], dict[str, Any]]
# Images tried in a row for one sample when skip_unreadable is on.
_MAX_REPLACEMENTS = 16
Transform = Callable[[Tensor, dict[str, Any], dict[str, Any]], Sample]


@dataclass
class ImageRecord:
    """One image's annotations as loaded from disk.

    boxes and ignore_boxes are float32 ndarray[N, 4] / [M, 4] (x1, y1, x2, y2, pixels,
    x2 = x + w); labels int64 ndarray[N] in 0..C-1; segms one COCO segmentation per box
    (or None when the dataset has no masks).
    """

    image_id: int
    file: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    ignore_boxes: np.ndarray
    segms: list[Any] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class DetectionDataset(Dataset):
    """Base class: subclasses fill ``self.records`` and ``self.classes``.

    A sample is ``(image, meta, target)``: image float32 Tensor[3, H, W] RGB in 0..255
    (before Normalize; with ``float_images`` off, as the transforms leave it: uint8 as
    decoded when none of them works in float), meta dict(image_id, ori_shape, img_shape,
    pad_shape, scale_factor, flip), target dict(boxes float32 Tensor[N, 4] x1, y1, x2, y2
    input pixels, labels int64 Tensor[N] in 0..C-1, ignore_boxes float32 Tensor[M, 4], masks
    InstanceMasks when the dataset has masks, proposals float32 Tensor[K, 4 | 5] when given).
    """

    records: list[ImageRecord]
    classes: tuple[str, ...]
    transforms: Transform | None
    # Training sets it: an image that cannot be read (changed after the pre-flight check)
    # is replaced by the next readable one and its error goes into the sample's
    # meta["skipped_images"], instead of ending the run; the trainer counts them against
    # its limit. Evaluation keeps raising.
    skip_unreadable: bool = False
    # Off: the samples' images stay as the transforms leave them (uint8 through resize and
    # flip), for batches normalised where the model runs (a quarter of the bytes to move).
    float_images: bool = True

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def aspect_ratio_flags(self) -> np.ndarray:
        """uint8 ndarray[len]: 1 for landscape (width > height) images, else 0."""
        return np.array([r.width > r.height for r in self.records], dtype=np.uint8)

    def load_image(self, record: ImageRecord) -> Tensor:
        """The decoded image, checked against the annotated size."""
        try:
            image = read_image(record.file, dtype=torch.uint8)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err} (image id {record.image_id} in {record.source})"
            ) from None
        except ValueError as err:
            raise ValueError(f"{err} (image id {record.image_id} in {record.source})") from err
        h, w = image.shape[-2:]
        if (h, w) != (record.height, record.width):
            raise ValueError(
                f"image file {record.file} is {w}x{h} but {record.source} says image id "
                f"{record.image_id} is {record.width}x{record.height}"
            )
        return image

    def __getitem__(self, index: int) -> Sample:
        if not self.skip_unreadable:
            return self._sample(self.records[index], self.load_image(self.records[index]))
        skipped = []
        for offset in range(min(len(self.records), _MAX_REPLACEMENTS)):
            record = self.records[(index + offset) % len(self.records)]
            try:
                image = self.load_image(record)
            except (FileNotFoundError, ValueError) as err:
                skipped.append(str(err))
                continue
            image, meta, target = self._sample(record, image)
            if skipped:  # why, for the trainer's count and warning
                meta["skipped_images"] = skipped
            return image, meta, target
        raise ValueError(
            f"{len(skipped)} images in a row cannot be read from index {index} on "
            f"({'; '.join(skipped[:2])}; ...); is the image folder still there?"
        )

    def _sample(self, record: ImageRecord, image: Tensor) -> Sample:
        """The sample of ``record`` with its decoded ``image``, through the transforms."""
        shape = (record.height, record.width, 3)
        meta = {
            "image_id": record.image_id,
            "ori_shape": shape,
            "img_shape": shape,
            "pad_shape": shape,
            "scale_factor": (1.0, 1.0, 1.0, 1.0),
            "flip": False,
        }
        target: dict[str, Any] = {
            "boxes": torch.from_numpy(record.boxes.copy()),
            "labels": torch.from_numpy(record.labels.copy()),
            "ignore_boxes": torch.from_numpy(record.ignore_boxes.copy()),
        }
        if record.segms is not None:
            target["masks"] = InstanceMasks(record.segms, record.height, record.width)
        if "proposals" in record.extra:
            target["proposals"] = torch.as_tensor(record.extra["proposals"], dtype=torch.float32)
        # Decoded images stay uint8 through the transforms until they normalise (resizing
        # uint8 is several times faster); the sample is float unless float_images is off.
        if self.transforms is not None:
            image, meta, target = self.transforms(image, meta, target)
        return (image.to(torch.float32) if self.float_images else image), meta, target
