"""Detection data: COCO and VOC datasets, the zoo's transforms, samplers and collate."""

from det_data.coco import CocoDataset, load_proposals
from det_data.detection_dataset import DetectionDataset, ImageRecord
from det_data.image_io import read_image
from det_data.masks import InstanceMasks, rasterize

__all__ = [
    "CocoDataset",
    "DetectionDataset",
    "ImageRecord",
    "InstanceMasks",
    "load_proposals",
    "rasterize",
    "read_image",
]
