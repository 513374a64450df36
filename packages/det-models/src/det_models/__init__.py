"""Detector families and the 2019 mmdetection model zoo.

Today this holds the zoo's table (`det_models.zoo`): every row of the 2019 zoo by name, with
its reference figures, checkpoint addresses and the schedule and data settings of its
original config.
"""

from det_models import zoo

__version__ = "0.1.0"

__all__ = ["__version__", "zoo"]
