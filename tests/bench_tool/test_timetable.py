"""The timetable wakes at most once a millisecond, yet stamps every request
with its own scheduled time, so latency still counts from the schedule.

Run on Trio's autojump clock: time only moves when every task sleeps, so the
figures are exact, whatever the machine's load.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import cast

import trio
import trio.testing

from sidecar.bench.giveup import GiveUpReaper
from sidecar.bench.outcome import OK, Outcome
from sidecar.bench.payloads import Caller, Operation, build_pool
from sidecar.bench.recorder import Recorder
from sidecar.bench.scheduler import MIN_WAKE_INTERVAL_S, OpenLoopRun, RunPlan
from sidecar.bench.slot import Slot
from sidecar.bench.wire import Prepared, prepare

CALLER = Caller("/t/kms/xks/v1", "foo", "arn:aws:iam::1:user/t", "arn:aws:kms:k")


class InstantSlot:
    """Answers OK at once and notes when each request left."""

    def __init__(self) -> None:
        self.give_up_at = math.inf
        self.connections_opened = 0
        self.sent_at: list[float] = []

    def watch_by(self, reaper: GiveUpReaper | None) -> None:
        pass

    def give_up(self) -> None:
        raise AssertionError("an instant answer is never given up")

    async def send(self, prepared: Prepared, give_up_at: float) -> tuple[Outcome, None]:
        self.sent_at.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        return OK, None


def requests() -> Iterator[Prepared]:
    pool = [prepare(b, "h") for b in build_pool(CALLER, Operation.HEALTH, 4)]
    while True:
        yield from pool


async def run_instant(
    rate: float, duration: float, slots: Sequence[InstantSlot]
) -> Recorder:
    plan = RunPlan(rate, duration, timeout=1.0, give_up=1.0, max_outstanding=1000)
    run = OpenLoopRun(plan, cast(Sequence[Slot], slots), requests(), Recorder())
    await run.run()
    return run.recorder


async def test_above_1000_per_second_one_wake_up_serves_several_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = [InstantSlot() for _ in range(8)]

    recorder = await run_instant(rate=4000, duration=0.01, slots=slots)

    sent_at = sorted(t for slot in slots for t in slot.sent_at)
    assert recorder.scheduled == recorder.completed == len(sent_at) == 40
    wake_ups = sorted(set(sent_at))
    assert len(wake_ups) <= 11  # t = 0, 1, ..., 10 ms
    assert all(
        b - a >= MIN_WAKE_INTERVAL_S - 1e-9 for a, b in itertools.pairwise(wake_ups)
    )


async def test_each_request_keeps_its_own_scheduled_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = await run_instant(rate=4000, duration=0.01, slots=[InstantSlot()])

    # Four requests leave at each wake-up, scheduled 0, 250, 500 and 750 us
    # before it: each is stamped with its own time, not the wake-up's...
    assert recorder.dispatch_lag.max_us <= 1000
    assert 200 <= recorder.dispatch_lag.percentile_us(50) <= 300
    assert recorder.dispatch_lag.percentile_us(90) >= 700
    # ...and its latency counts from that time (the answer is instant).
    assert recorder.latency.percentile_us(90) >= 700


async def test_at_or_below_1000_per_second_every_request_leaves_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = [InstantSlot()]

    recorder = await run_instant(rate=500, duration=0.02, slots=slots)

    assert recorder.scheduled == 10
    assert recorder.dispatch_lag.max_us == 0
    assert len(set(slots[0].sent_at)) == 10
