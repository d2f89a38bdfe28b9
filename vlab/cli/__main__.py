"""``python -m vlab.cli``: the same as the ``vlab`` console script."""

import sys

from vlab.cli import main

sys.exit(main())
