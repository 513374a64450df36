"""Speed and memory of a zoo detector, optionally side by side with torchvision's.

The command lives in det_engine.apps.bench; this module lets
``python -m det_engine.bench`` run it.
"""

import sys

from det_engine.apps.bench import main

if __name__ == "__main__":
    sys.exit(main())
