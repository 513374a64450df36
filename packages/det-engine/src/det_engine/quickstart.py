"""``python -m det_engine.quickstart``: a detector trained, evaluated and shown in minutes on a CPU.

The command lives in det_engine.apps.quickstart; this module lets
``python -m det_engine.quickstart`` run it.
"""

import sys

from det_engine.apps.quickstart import main

if __name__ == "__main__":
    sys.exit(main())
