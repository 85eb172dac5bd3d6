"""``python -m lseg_nb`` runs the command line."""

import sys

from lseg_nb.apps.cli import main

sys.exit(main())
