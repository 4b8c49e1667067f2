"""Give-up times without a Trio cancel scope per request.

A request not answered ``give_up`` seconds after it was sent is abandoned
and its connection closed (``scheduler``). ``with trio.move_on_at(...)``
around each exchange did that, but a cancel scope registers a deadline and
rebuilds the task's cancel status on the way in and out: about 8 % of the
tool's CPU at 1,000 requests a second (py-spy). Instead, as the sidecar's
backend does (``sidecar/backends/cryptohub/deadlines.py``):

* a slot about to wait for an answer records its give-up time
  (``Slot.give_up_at``) and tells the reaper (``watch``);
* one reaper task per phase sleeps until the earliest give-up time it knows
  of, then gives up on every slot whose time has passed (which wakes the
  slot's task with ``trio.ClosedResourceError``), and sleeps until the
  earliest one left.

Unlike a ticking reaper this fires *at* the give-up time, not up to a tick
after it, so a timeout's recorded latency is what it was before. It wakes
rarely: a slot whose request was answered is skipped at the next wake-up
(its time is reset), and a request sent later has a later give-up time (the
give-up delay is one constant per phase), so ``watch`` moves the wake-up
earlier only when nothing else was waiting. A wake-up scans every slot: a
few dozen attribute reads, about once per give-up delay under a light load.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import trio


class Watched(Protocol):
    """A slot as the reaper sees it."""

    give_up_at: float  # trio time; math.inf while nothing is waiting

    def give_up(self) -> None:
        """Abandon the request waiting for an answer (synchronously)."""

    def watch_by(self, reaper: GiveUpReaper | None) -> None:
        """Report give-up times to ``reaper`` from now on (None: stop)."""


class GiveUpReaper:
    """Gives up on its slots' requests at their give-up times; ``run``."""

    def __init__(self, slots: Sequence[Watched]) -> None:
        self._slots = slots
        self._wake_at = math.inf
        self._sleep = trio.CancelScope()

    def watch(self, give_up_at: float) -> None:
        """A slot waits for an answer until ``give_up_at`` (trio time)."""
        if give_up_at < self._wake_at:
            self._wake_at = self._sleep.deadline = give_up_at

    async def run(self) -> None:
        """Give up on requests until cancelled."""
        while True:
            with trio.CancelScope(deadline=self._wake_at) as self._sleep:
                await trio.sleep_forever()
            self._wake_at = self.give_up_due(trio.current_time())

    def give_up_due(self, now: float) -> float:
        """Give up on the requests due by ``now``; the next give-up time."""
        next_at = math.inf
        for slot in self._slots:
            at = slot.give_up_at
            if at <= now:
                slot.give_up()
            elif at < next_at:
                next_at = at
        return next_at


@asynccontextmanager
async def watching_give_up(slots: Sequence[Watched]) -> AsyncIterator[None]:
    """Run a reaper for ``slots`` while the block runs."""
    reaper = GiveUpReaper(slots)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reaper.run)
        for slot in slots:
            slot.watch_by(reaper)
        try:
            yield
        finally:
            for slot in slots:
                slot.watch_by(None)
            nursery.cancel_scope.cancel()
