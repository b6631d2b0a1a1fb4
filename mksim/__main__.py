"""``python -m mksim``: the same as the ``mksim`` console script."""
import sys

from mksim.cli import main

if __name__ == "__main__":
    sys.exit(main())
