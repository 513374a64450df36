"""Detection data: COCO and VOC datasets, the zoo's transforms, samplers and collate."""

from det_data import shapes
from det_data.check import CheckReport, check_coco
from det_data.coco import CocoDataset
from det_data.collate import collate
from det_data.detection_dataset import DetectionDataset, ImageRecord
from det_data.image_io import read_image
from det_data.masks import InstanceMasks, rasterize
from det_data.proposals import load_proposals, save_proposals
from det_data.samplers import DistributedGroupSampler, GroupSampler
from det_data.ssd_transforms import (
    Expand,
    MinIoURandomCrop,
    PhotoMetricDistortion,
    ssd_test_transforms,
    ssd_train_transforms,
)
from det_data.transforms import (
    Compose,
    Normalize,
    Pad,
    RandomFlip,
    Resize,
    ToFloat,
    resize_target,
    zoo_test_transforms,
    zoo_train_transforms,
)
from det_data.voc import VOC_CLASSES, VOCDataset

__all__ = [
    "VOC_CLASSES",
    "CheckReport",
    "CocoDataset",
    "Compose",
    "DetectionDataset",
    "DistributedGroupSampler",
    "Expand",
    "GroupSampler",
    "ImageRecord",
    "InstanceMasks",
    "MinIoURandomCrop",
    "Normalize",
    "Pad",
    "PhotoMetricDistortion",
    "RandomFlip",
    "Resize",
    "ToFloat",
    "VOCDataset",
    "check_coco",
    "collate",
    "load_proposals",
    "rasterize",
    "read_image",
    "resize_target",
    "save_proposals",
    "shapes",
    "ssd_test_transforms",
    "ssd_train_transforms",
    "zoo_test_transforms",
    "zoo_train_transforms",
]
