"""``python -m simulator``: the same as the ``cryptohub-sim`` console script."""

from simulator.cli import main

raise SystemExit(main())
