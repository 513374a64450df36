"""Reading files that others hand out without running code they may carry: Detectron
weights and 2019 proposal files (:mod:`det_io.safe_pickle`), and images
(:mod:`det_io.images`, the one image decoder)."""

from det_io.images import read_rgb
from det_io.safe_pickle import ALLOWED_GLOBALS, UnsafePickleError, load, load_npy, loads

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load", "load_npy", "loads", "read_rgb"]
