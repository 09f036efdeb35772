"""``python -m cosnet_core``: the command line (see :mod:`cosnet_core.cli`)."""

import sys

from cosnet_core.cli import main

sys.exit(main())
