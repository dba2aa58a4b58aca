"""``python -m dermkit.cli ...`` (and ``torchrun -m dermkit.cli train ...``)."""

import sys

from dermkit.cli import main

sys.exit(main())
