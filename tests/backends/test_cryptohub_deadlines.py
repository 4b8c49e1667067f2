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
