"""A request not answered by its give-up time is abandoned then, and its
connection closed; the reaper fires at each give-up time, not a tick later."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from fixtures.pki import Pki
from sidecar.bench.giveup import GiveUpReaper, watching_give_up
from sidecar.bench.outcome import GAVE_UP, Kind
from sidecar.bench.payloads import Operation, build_pool
from sidecar.bench.runner import caller_of
from sidecar.bench.signer import host_header
from sidecar.bench.wire import Prepared, prepare
from tests.bench_tool.conftest import RunningProxy
from tests.bench_tool.helpers import settings_for
from tests.bench_tool.test_open_loop import slots_for


def one_encrypt(port: int, pki: Pki) -> Prepared:
    settings = settings_for(port, pki)
    body = build_pool(caller_of(settings), Operation.ENCRYPT, 1)[0]
    return prepare(body, host_header(settings.endpoint))


async def test_an_unanswered_request_is_given_up_at_its_time_and_closed(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    (slot,) = slots_for(settings_for(fake_proxy.port, pki), 1)
    request = one_encrypt(fake_proxy.port, pki)
    async with watching_give_up([slot]):
        await slot.connect()
        fake_proxy.proxy.delay = 30.0  # never answers within the test
        sent_at = trio.current_time()
        outcome, response = await slot.send(request, sent_at + 0.2)
        gave_up_after = trio.current_time() - sent_at

        fake_proxy.proxy.delay = 0.0
        again, _ = await slot.send(request, trio.current_time() + 5)
    await slot.aclose()

    assert (outcome, response) == (GAVE_UP, None)
    assert 0.2 <= gave_up_after < 0.3
    # The next request had to open a new connection: the old one was closed.
    assert again.kind is Kind.OK
    assert slot.connections_opened == 2 == fake_proxy.proxy.connections


async def test_an_answer_before_the_give_up_time_keeps_its_connection(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    (slot,) = slots_for(settings_for(fake_proxy.port, pki), 1)
    request = one_encrypt(fake_proxy.port, pki)
    fake_proxy.proxy.delay = 0.05
    async with watching_give_up([slot]):
        for _ in range(3):
            outcome, _ = await slot.send(request, trio.current_time() + 0.15)
            assert outcome.kind is Kind.OK
            await trio.sleep(0.15)  # past the give-up time of the answered one
    await slot.aclose()

    assert slot.connections_opened == 1 == fake_proxy.proxy.connections


async def test_sending_without_a_reaper_is_refused(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    (slot,) = slots_for(settings_for(fake_proxy.port, pki), 1)
    try:
        await slot.connect()
        with pytest.raises(RuntimeError, match="GiveUpReaper"):
            await slot.send(one_encrypt(fake_proxy.port, pki), math.inf)
    finally:
        await slot.aclose()


class FakeSlot:
    def __init__(self) -> None:
        self.give_up_at = math.inf
        self.gave_up_at: float | None = None

    def give_up(self) -> None:
        self.give_up_at = math.inf
        self.gave_up_at = trio.current_time()

    def watch_by(self, reaper: GiveUpReaper | None) -> None:
        pass


async def test_the_reaper_fires_at_each_give_up_time_exactly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    early, late, answered = FakeSlot(), FakeSlot(), FakeSlot()
    reaper = GiveUpReaper([early, late, answered])
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reaper.run)
        await trio.sleep(0.05)  # the reaper sleeps: nothing is waiting
        for slot, after in ((late, 0.3), (early, 0.1), (answered, 0.2)):
            slot.give_up_at = start + after
            reaper.watch(slot.give_up_at)
        await trio.sleep(0.1)
        answered.give_up_at = math.inf  # its answer came in time
        await trio.sleep(1)
        nursery.cancel_scope.cancel()

    assert early.gave_up_at == start + 0.1
    assert late.gave_up_at == start + 0.3
    assert answered.gave_up_at is None
