"""Run a module under cProfile with a CPU-time clock, for ``--profile``.

    python -m tests.bench.cpu_profile OUT.prof MODULE [ARGS...]

``python -m cProfile`` times functions with the wall clock, so a ``send``
that wakes the peer process and is preempted by it looks expensive on a busy
two-core machine. ``time.thread_time`` counts only this thread's CPU time,
which is what the benchmark asks about (the services run Trio in one thread).
The profile is written when the module returns or raises SystemExit; both
services do so on SIGTERM.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main(argv: list[str]) -> None:
    out, module, *args = argv
    sys.argv = [module, *args]
    profile = cProfile.Profile(time.thread_time)
    try:
        profile.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.dump_stats(out)


if __name__ == "__main__":
    main(sys.argv[1:])
