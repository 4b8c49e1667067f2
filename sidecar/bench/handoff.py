"""The FIFO between the timetable and the connections' workers.

A ``trio`` memory channel does the job, but each request paid for its
generality (statistics, clones, a checkpoint on every receive, also when an
item was waiting): about 2 % of the tool's CPU at 1,000 requests a second.
This queue does what the run needs and no more: ``put`` never blocks; it
hands the item straight to the worker that has waited longest, else queues
it; ``get`` returns the oldest item, or parks the worker until ``put`` or
``close``. Items and idle workers are both served first in, first out, as
the channel served them.

``get`` returns at once when an item is queued: the worker then yields in
its exchange (it waits for the answer), or, for a request that already
expired in the queue, takes the next one without yielding; a backlog drains
in one go, which is cheap (nothing is sent) and finite.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import outcome
import trio

Item = TypeVar("Item")


class HandOff(Generic[Item]):
    """One producer, many consumers, unbounded; single Trio thread only."""

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._idle: deque[trio.lowlevel.Task] = deque()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the hand-off is closed")
        if self._idle:
            trio.lowlevel.reschedule(self._idle.popleft(), outcome.Value(item))
        else:
            self._items.append(item)

    def close(self) -> None:
        """No more items: idle workers, and later the rest, get None."""
        self._closed = True
        while self._idle:
            trio.lowlevel.reschedule(self._idle.popleft(), outcome.Value(None))

    async def get(self) -> Item | None:
        """The oldest item; None once closed and empty."""
        if self._items:
            return self._items.popleft()
        if self._closed:
            await trio.lowlevel.checkpoint()
            return None
        task = trio.lowlevel.current_task()
        self._idle.append(task)

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        item: Item | None = await trio.lowlevel.wait_task_rescheduled(abort)
        return item
