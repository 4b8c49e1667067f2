"""The open-loop run: a fixed timetable, whatever the server does.

KMS sends when its callers call, not when the proxy has answered the last
request. A closed-loop tool (send, wait, send) slows down with a slow server
and so never measures the requests a slow server delays: "coordinated
omission". Here request ``i`` is *scheduled* at ``start + i / rate``:

* the timetable task hands each request to a FIFO queue at its scheduled
  time, never waiting for answers;
* ``connections`` workers, one per slot (keep-alive connection), take
  requests from the queue; a request that finds no free connection waits in
  the queue, and that wait is part of its latency;
* latency is measured from the *scheduled* time to the end of the response,
  so a stall shows in the latency of every request it delayed;
* a request whose latency passes ``timeout`` is a TIMEOUT, whatever came back
  later; ``give_up`` after it was sent the worker stops waiting and closes
  the connection (a late answer would arrive on it); a request that waited
  in the queue for ``give_up`` is a TIMEOUT without being sent. (A give-up
  counted from the scheduled time instead would, once a backlog formed,
  cancel each reconnect's TLS handshake half way and never recover.)
* if ``max_outstanding`` requests are queued or in flight, the next one is
  not sent but counted as dropped by the client: reported, never hidden.

Times are trio's clock (monotonic); signatures use the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import trio

from sidecar.bench.giveup import watching_give_up
from sidecar.bench.handoff import HandOff
from sidecar.bench.outcome import EXPIRED, LATE, Kind, Outcome
from sidecar.bench.recorder import Recorder
from sidecar.bench.slot import Slot
from sidecar.bench.wire import Prepared

# A Trio sleep costs this machine 45 us of CPU when it is due at once and
# about 100 us after 1 ms of idleness (a cancel scope that fires, and a cold
# event loop; tests/bench/load_tool_bench.py): more than a request's own
# work. So the timetable wakes at most once a millisecond and dispatches
# what fell due meanwhile; a request then leaves up to 1 ms after its
# scheduled time, and that lag counts in its latency (it shows in
# ``dispatch_lag``). Chosen, not tuned: under 0.5 % of KMS's 250 ms.
MIN_WAKE_INTERVAL_S = 0.001


@dataclass(frozen=True, slots=True)
class RunPlan:
    rate: float  # requests per second
    duration: float  # seconds of timetable
    timeout: float  # seconds; slower answers are TIMEOUTs (KMS: 250 ms)
    give_up: float  # seconds to wait in the queue, and again for an answer
    max_outstanding: int  # queued + in flight; beyond: dropped by client

    @property
    def total(self) -> int:
        # The epsilon keeps 0.29 s at 100/s at 29 requests, not 28.99... -> 28.
        return math.floor(self.rate * self.duration + 1e-9)


_Item = tuple[float, Prepared]


class OpenLoopRun:
    """One timed phase: call ``run`` once; ``outstanding`` is live.

    The slots stay open afterwards; their owner closes them.
    """

    def __init__(
        self,
        plan: RunPlan,
        slots: Sequence[Slot],
        requests: Iterator[Prepared],
        recorder: Recorder,
    ) -> None:
        self.plan = plan
        self._slots = slots
        self._requests = requests
        self.recorder = recorder
        self.outstanding = 0

    async def run(self) -> None:
        """Send the whole timetable and wait for every answer."""
        queue = HandOff[_Item]()
        async with watching_give_up(self._slots), trio.open_nursery() as nursery:
            for slot in self._slots:
                nursery.start_soon(self._worker, slot, queue)
            try:
                await self._timetable(queue)
            finally:
                queue.close()

    async def _timetable(self, queue: HandOff[_Item]) -> None:
        rate, total = self.plan.rate, self.plan.total
        start = trio.current_time()
        index = 0
        while index < total:
            # Hand on every request that is due, each stamped with its own
            # scheduled time, then sleep until the next one, but at least
            # MIN_WAKE_INTERVAL_S: above 1,000 requests a second one wake-up
            # serves several requests (see MIN_WAKE_INTERVAL_S).
            now = trio.current_time()
            due = min(total, math.floor((now - start) * rate) + 1)
            for position in range(index, due):
                self._dispatch(queue, start + position / rate, now)
            index = due
            await trio.sleep_until(max(start + index / rate, now + MIN_WAKE_INTERVAL_S))

    def _dispatch(self, queue: HandOff[_Item], scheduled: float, now: float) -> None:
        self.recorder.scheduled += 1
        self.recorder.dispatch_lag.record(now - scheduled)
        if self.outstanding >= self.plan.max_outstanding:
            self.recorder.drop()
            return
        self.outstanding += 1
        queue.put((scheduled, next(self._requests)))

    async def _worker(self, slot: Slot, queue: HandOff[_Item]) -> None:
        while (item := await queue.get()) is not None:
            scheduled, prepared = item
            outcome = await self._serve(slot, scheduled, prepared)
            self.outstanding -= 1
            latency = trio.current_time() - scheduled
            if latency > self.plan.timeout and outcome.kind is not Kind.TIMEOUT:
                outcome = LATE  # KMS would have given up before this came
            self.recorder.record(prepared.body.operation, outcome, latency)

    async def _serve(self, slot: Slot, scheduled: float, prepared: Prepared) -> Outcome:
        now = trio.current_time()
        self.recorder.queue_wait.record(now - scheduled)
        if now - scheduled >= self.plan.give_up:
            return EXPIRED
        opened = slot.connections_opened
        outcome, _ = await slot.send(prepared, now + self.plan.give_up)
        self.recorder.connections_opened += slot.connections_opened - opened
        return outcome
