"""The deadline reaper wakes each waiter once its deadline has passed."""

from __future__ import annotations

import trio

from sidecar.backends.cryptohub.deadlines import DeadlineReaper


class Waiter:
    def __init__(self) -> None:
        self.expired_at: float | None = None

    def expire(self) -> None:
        self.expired_at = trio.current_time()


async def test_only_waiters_past_their_deadline_are_expired_and_not_early() -> None:
    reaper = DeadlineReaper(tick_s=0.01)
    soon, later = Waiter(), Waiter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reaper.run)
        deadline = trio.current_time() + 0.05
        reaper.watch(deadline + 10, later)
        reaper.watch(deadline, soon)

        await trio.sleep(0.2)

        assert soon.expired_at is not None
        assert deadline <= soon.expired_at < deadline + 0.1
        assert later.expired_at is None
        assert reaper.watched == 1
        nursery.cancel_scope.cancel()


async def test_a_waiter_watched_after_an_idle_spell_is_still_expired() -> None:
    reaper = DeadlineReaper(tick_s=0.01)
    waiter = Waiter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reaper.run)
        await trio.sleep(0.05)  # nothing watched: the reaper waits

        reaper.watch(trio.current_time() + 0.02, waiter)
        await trio.sleep(0.15)

        assert waiter.expired_at is not None
        nursery.cancel_scope.cancel()


async def test_in_order_and_out_of_order_deadlines_each_expire_on_time() -> None:
    reaper = DeadlineReaper(tick_s=0.01)
    offsets = [0.03, 0.06, 0.09, 0.02, 0.12, 0.05]  # mostly rising, two earlier
    waiters = [Waiter() for _ in offsets]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reaper.run)
        start = trio.current_time()
        for offset, waiter in zip(offsets, waiters, strict=True):
            reaper.watch(start + offset, waiter)

        await trio.sleep(0.25)

        for offset, waiter in zip(offsets, waiters, strict=True):
            assert waiter.expired_at is not None
            assert start + offset <= waiter.expired_at < start + offset + 0.1
        assert reaper.watched == 0
        nursery.cancel_scope.cancel()
