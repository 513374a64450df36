"""``python -m det_engine.test [MODEL BACKBONE SCHEDULE] --ckpt CKPT``: evaluate a checkpoint.

The command lives in det_engine.apps.test; this module lets
``python -m det_engine.test`` run it.
"""

import sys

from det_engine.apps.test import main

if __name__ == "__main__":
    sys.exit(main())
