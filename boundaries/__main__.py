"""``python -m boundaries`` (and ``torchrun -m boundaries``) is the ``boundaries`` command."""

import sys

from boundaries.cli import main

sys.exit(main())
