"""``python -m mcsf``: see :mod:`mcsf.cli`."""

from __future__ import annotations

import sys

from mcsf.cli import main

if __name__ == "__main__":
    sys.exit(main())
