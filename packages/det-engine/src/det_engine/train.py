"""``python -m det_engine.train MODEL BACKBONE SCHEDULE``: train a zoo row, then evaluate it.

The command lives in det_engine.apps.train; this module lets
``python -m det_engine.train`` run it.
"""

import sys

from det_engine.apps.train import main

if __name__ == "__main__":
    sys.exit(main())
