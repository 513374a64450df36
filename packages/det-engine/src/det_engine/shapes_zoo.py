"""``python -m det_engine.shapes_zoo``: every detector family trained on the shapes dataset.

The command lives in det_engine.apps.shapes_zoo; this module lets
``python -m det_engine.shapes_zoo`` run it.
"""

import sys

from det_engine.apps.shapes_zoo import main

if __name__ == "__main__":
    sys.exit(main())
