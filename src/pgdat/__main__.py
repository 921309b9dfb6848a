"""``python -m pgdat`` (also what ``torchrun -m pgdat`` runs)."""

import sys

from pgdat.cli.main import main

sys.exit(main())
