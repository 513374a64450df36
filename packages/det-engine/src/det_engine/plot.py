"""``python -m det_engine.plot WORK_DIR``: loss, lr and AP curves of a training run in one PNG.

The command lives in det_engine.apps.plot; this module lets
``python -m det_engine.plot`` run it.
"""

import sys

from det_engine.apps.plot import main

if __name__ == "__main__":
    sys.exit(main())
