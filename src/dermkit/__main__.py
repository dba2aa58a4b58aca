"""``python -m dermkit ...``: the same entry point as the ``dermkit`` command."""

import sys

from dermkit.cli import main

sys.exit(main())
