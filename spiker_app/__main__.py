"""``python -m spiker_app <command> ...``: the ``spiker`` console script."""

import sys

from spiker_app.cli import main

sys.exit(main())
