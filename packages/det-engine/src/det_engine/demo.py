"""``python -m det_engine.demo IMAGE... --ckpt CKPT --out DIR``: draw a checkpoint's detections.

The command lives in det_engine.apps.demo; this module lets
``python -m det_engine.demo`` run it.
"""

import sys

from det_engine.apps.demo import main

if __name__ == "__main__":
    sys.exit(main())
