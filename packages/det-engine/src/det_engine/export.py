"""``python -m det_engine.export``: a detector as a .pt2 or ONNX file for deployment.

The command lives in det_engine.apps.export; this module lets
``python -m det_engine.export`` run it.
"""

import sys

from det_engine.apps.export import main

if __name__ == "__main__":
    sys.exit(main())
