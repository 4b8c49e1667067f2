"""A status line once a second on stderr while the timed run goes on.

Rates are for the last second; p99 and the failure counts are for the run
so far, so a line shows at once whether the proxy is keeping up now and
whether it has yet broken the budget.
"""

from __future__ import annotations

from typing import TextIO

import trio

from sidecar.bench.outcome import Kind
from sidecar.bench.scheduler import OpenLoopRun


def progress_line(
    run: OpenLoopRun, elapsed: float, sent_per_s: float, answered_per_s: float
) -> str:
    recorder = run.recorder
    p99_ms = recorder.latency.percentile_us(99) / 1000
    return (
        f"[{elapsed:5.0f} s] sent {sent_per_s:.0f}/s  answered {answered_per_s:.0f}/s  "
        f"p99 {p99_ms:.2f} ms  not ok {recorder.not_ok}  "
        f"timeouts {recorder.count(Kind.TIMEOUT)}  "
        f"dropped {recorder.count(Kind.DROPPED)}  outstanding {run.outstanding}"
    )


async def show_progress(
    run: OpenLoopRun, stream: TextIO, interval: float = 1.0
) -> None:
    """Write a line every ``interval`` seconds until cancelled."""
    start = trio.current_time()
    tick, scheduled, completed = 1, 0, 0
    while True:
        await trio.sleep_until(start + tick * interval)
        recorder = run.recorder
        line = progress_line(
            run,
            tick * interval,
            (recorder.scheduled - scheduled) / interval,
            (recorder.completed - completed) / interval,
        )
        print(line, file=stream, flush=True)
        tick, scheduled, completed = tick + 1, recorder.scheduled, recorder.completed
