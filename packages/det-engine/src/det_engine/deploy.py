"""``python -m det_engine.deploy MODEL.onnx IMAGE...``: run an exported detector in onnxruntime.

The command lives in det_engine.apps.deploy and `OnnxDetector` in det_engine.onnx_detector;
this module lets ``python -m det_engine.deploy`` run it and ``from det_engine.deploy import
OnnxDetector`` work.
"""

import sys

from det_engine.apps.deploy import main
from det_engine.onnx_detector import OnnxDetector

__all__ = ["OnnxDetector", "main"]

if __name__ == "__main__":
    sys.exit(main())
