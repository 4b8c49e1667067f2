"""Request deadlines without a Trio cancel scope per request.

Every backend call must end by its deadline (``request_timeout_s``). The
obvious ``with trio.move_on_after(...)`` around each call costs about 16 us of
CPU per call on the 2-core target (a cancel scope registers a deadline and
rebuilds the task's cancel status on the way in and out), more than building,
encoding and decoding the call's frames together (docs/performance.md). What
a request waits for is one event (its reply), so instead:

* a waiting request registers its ``Expirable`` and deadline here: appended
  to a queue when it is no earlier than the last one queued, which is every
  backend call (each deadline is "now" plus the same timeout), pushed on a
  heap otherwise; a queue append and pop cost about 0.2 us against a heap's
  0.8 us with the ~750 entries of 5,000 commands a second (tight loop);
* one reaper task per backend wakes every ``tick_s`` while anything is
  registered, and expires whatever is past its deadline, which wakes the
  request; it sleeps on an event while nothing is.

The price: a deadline fires up to one tick late (10 ms against a 150 ms
deadline and KMS's 250 ms). A request that got its reply stays registered
until its deadline passes, then is dropped; expiring it is a no-op. Waiting
for a connection to open is rare and keeps its own cancel scope
(``node.py``).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from typing import Final, Protocol

import trio

# How late a deadline may fire; chosen, not measured: small against the
# 150 ms default deadline, and at most 100 wake-ups a second under load.
DEFAULT_TICK_S: Final = 0.010


class Expirable(Protocol):
    def expire(self) -> None:
        """The deadline passed: wake the waiting request (no-op if done)."""


class DeadlineReaper:
    """Expires registered waiters at their deadlines; ``run`` is its task."""

    def __init__(self, tick_s: float = DEFAULT_TICK_S) -> None:
        self._tick = tick_s
        self._queue: deque[tuple[float, Expirable]] = deque()  # in deadline order
        self._last_queued = -math.inf
        self._heap: list[tuple[float, int, Expirable]] = []  # the out-of-order rest
        self._order = itertools.count()  # ties never compare the waiters
        self._registered = trio.Event()
        self._idle = False  # True while run() waits for _registered

    def watch(self, deadline: float, waiter: Expirable) -> None:
        """Call ``waiter.expire()`` once ``deadline`` (Trio time) has passed."""
        if deadline >= self._last_queued:
            self._queue.append((deadline, waiter))
            self._last_queued = deadline
        else:
            heapq.heappush(self._heap, (deadline, next(self._order), waiter))
        if self._idle:  # a flag, not Event.is_set(): this runs per request
            self._idle = False
            self._registered.set()

    @property
    def watched(self) -> int:
        """Waiters registered and not yet past their deadline (for tests)."""
        return len(self._queue) + len(self._heap)

    async def run(self) -> None:
        """Expire waiters until cancelled."""
        while True:
            if not self._queue and not self._heap:
                self._registered = trio.Event()
                self._idle = True
                await self._registered.wait()
                continue
            await trio.sleep(self._tick)
            self.expire_due(trio.current_time())

    def expire_due(self, now: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= now:
            queue.popleft()[1].expire()
        heap = self._heap
        while heap and heap[0][0] <= now:
            heapq.heappop(heap)[2].expire()
