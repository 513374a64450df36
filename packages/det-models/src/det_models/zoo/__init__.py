"""The 2019 mmdetection model zoo by name: every row, its figures, checkpoints and settings.

>>> from det_models import zoo
>>> row = zoo.entry("faster_rcnn", "r50", "1x")
>>> row.reference.box_ap, row.schedule_config.lr_steps
(36.4, (8, 11))
>>> zoo.get("mask_rcnn", "r50", "3x", variant="gn").model.neck.norm
'GN'
"""

from det_models.config import (
    DataConfig,
    Normalize,
    ScheduleConfig,
    SSDAugment,
)
from det_models.zoo.configs import build, get, model_config
from det_models.zoo.entry import MAIN_SITE, MIRROR_SITE, Reference, ZooEntry, mirror_of
from det_models.zoo.lookup import MODELS, entry, names
from det_models.zoo.markdown import table
from det_models.zoo.pretrained import load_pretrained, load_released, released_config

__all__ = [
    "MAIN_SITE",
    "MIRROR_SITE",
    "MODELS",
    "DataConfig",
    "Normalize",
    "Reference",
    "SSDAugment",
    "ScheduleConfig",
    "ZooEntry",
    "build",
    "entry",
    "get",
    "load_pretrained",
    "load_released",
    "mirror_of",
    "model_config",
    "names",
    "released_config",
    "table",
]
