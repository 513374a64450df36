"""Reading files that others hand out (Detectron weights, 2019 proposal files) without
running code they may carry: :mod:`det_io.safe_pickle`."""

from det_io.safe_pickle import ALLOWED_GLOBALS, UnsafePickleError, load, load_npy, loads

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load", "load_npy", "loads"]
