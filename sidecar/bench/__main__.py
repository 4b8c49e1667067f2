"""``python -m sidecar.bench``: the same as the ``xks-bench`` command."""

import sys

from sidecar.bench.cli import main

sys.exit(main())
