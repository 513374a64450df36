"""Detector families and the 2019 mmdetection model zoo.

The zoo's table (`det_models.zoo`): every row of the 2019 zoo by name, with its reference
figures, checkpoint addresses and the schedule and data settings of its original config; and
`Detector`, inference on file paths, numpy arrays or tensors with the row's test-time
preprocessing; `init_backbone`, a built detector's backbone set to the ImageNet weights its
config names (as a training run starts).
"""

from det_models import zoo
from det_models.backbone_weights import init_backbone
from det_models.predict import Detector

__version__ = "0.1.0"

__all__ = ["Detector", "__version__", "init_backbone", "zoo"]
