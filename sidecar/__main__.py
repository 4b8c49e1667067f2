"""``python -m sidecar``: the same as the ``xks-sidecar`` console script."""

from sidecar.cli import main

raise SystemExit(main())
