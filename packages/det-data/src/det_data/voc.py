"""Pascal VOC (2007, 2012) detection datasets read from the devkit's XML files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from det_data.detection_dataset import DetectionDataset, ImageRecord, Transform

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


class VOCDataset(DetectionDataset):
    """A VOC split: boxes and labels from ``Annotations/<id>.xml``, images from JPEGImages.

    VOC's 1-based inclusive corners become x1 = xmin - 1, y1 = ymin - 1, x2 = xmax,
    y2 = ymax (0-based, x2 = x + w like the COCO datasets). Objects flagged difficult go to
    ``ignore_boxes``, their labels to ``record.extra["ignore_labels"]`` (for VOC mAP, which
    ignores detections of a difficult object's class). Labels are indices into VOC_CLASSES
    (20 classes).

    Args:
        root: the VOCdevkit folder (holding VOC2007/, VOC2012/).
        split: the ImageSets/Main list: "train", "val", "trainval" or "test".
        year: "2007" or "2012".
        train: drop images with no non-difficult object or smaller than min_size.
        transforms: ``t(image, meta, target) -> (image, meta, target)``, or None.
        min_size: shorter side below which training drops an image, pixels.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        year: str | int = "2007",
        train: bool = True,
        transforms: Transform | None = None,
        min_size: int = 32,
    ) -> None:
        self.root = Path(root) / f"VOC{year}"
        self.transforms = transforms
        self.classes = VOC_CLASSES
        self.train = train
        list_file = self.root / "ImageSets" / "Main" / f"{split}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(
                f"VOC image list {list_file} does not exist; root must be the VOCdevkit folder "
                f"holding VOC{year}/ and split one of train, val, trainval, test"
            )
        ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        self.records = []
        for image_id in ids:
            record = self._parse(image_id)
            if train and (len(record.boxes) == 0 or min(record.width, record.height) < min_size):
                continue
            self.records.append(record)

    def _parse(self, image_id: str) -> ImageRecord:
        xml_file = self.root / "Annotations" / f"{image_id}.xml"
        if not xml_file.is_file():
            raise FileNotFoundError(f"VOC annotation {xml_file} (listed in the split) is missing")
        try:
            tree = ET.parse(xml_file).getroot()
            width = int(tree.findtext("size/width"))
            height = int(tree.findtext("size/height"))
        except (ET.ParseError, TypeError, ValueError) as err:
            raise ValueError(f"VOC annotation {xml_file} is malformed: {err}") from err
        boxes, labels, ignore, ignore_labels = [], [], [], []
        for i, obj in enumerate(tree.iter("object")):
            name = (obj.findtext("name") or "").strip()
            if name not in VOC_CLASSES:
                raise ValueError(
                    f"VOC annotation {xml_file}: object #{i} has unknown class {name!r}"
                )
            try:
                box = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"VOC annotation {xml_file}: object #{i} has a bad bndbox"
                ) from err
            box = [box[0] - 1, box[1] - 1, box[2], box[3]]
            if (obj.findtext("difficult") or "0").strip() == "1":
                ignore.append(box)
                ignore_labels.append(VOC_CLASSES.index(name))
            else:
                boxes.append(box)
                labels.append(VOC_CLASSES.index(name))
        return ImageRecord(
            image_id=int(image_id) if image_id.isdigit() else image_id,  # type: ignore[arg-type]
            file=self.root / "JPEGImages" / f"{image_id}.jpg",
            width=width,
            height=height,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64),
            ignore_boxes=np.asarray(ignore, dtype=np.float32).reshape(-1, 4),
            source=str(xml_file),
            extra={"ignore_labels": np.asarray(ignore_labels, dtype=np.int64)},
        )
