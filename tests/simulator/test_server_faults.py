"""Each injected fault, as a client of the host protocol sees it."""

from __future__ import annotations

import ssl

import pytest
import trio

from simulator import server
from simulator.hostproto.codec import ErrorCode, Frame, b64
from simulator.hostproto.handlers import HandlerContext, handle
from tests.simulator.conftest import RunningSimulator, eventually

ECHO = Frame.of("ECHO", ID="f1", DT=b64(b"ping"))


async def test_latency_delays_every_reply(simulator: RunningSimulator) -> None:
    client = await simulator.connect()
    simulator.faults.latency_ms = 250

    started = trio.current_time()
    reply = await client.request(ECHO)
    elapsed = trio.current_time() - started

    assert reply.get("ER") == "00"
    assert 0.24 <= elapsed < 2.0


async def test_error_rate_one_answers_every_command_injected_fault(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    simulator.faults.error_rate = 1.0

    replies = [await client.request(Frame.of(cmd, ID="x")) for cmd in ("ECHO", "NODE")]

    for reply in replies:
        assert reply.get("ER") == ErrorCode.INJECTED_FAULT.value
        assert reply.get("ID") == "x"


async def test_injected_errors_do_not_run_the_command(
    simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[Frame] = []

    def spy(request: Frame, ctx: HandlerContext) -> Frame:
        ran.append(request)
        return handle(request, ctx)

    monkeypatch.setattr(server, "handle", spy)
    client = await simulator.connect()
    await client.request(ECHO)
    simulator.faults.error_rate = 1.0

    reply = await client.request(Frame.of("GCEN", KL="foo", PT=b64(b"x")))

    assert reply.get("ER") == "90"
    assert [request.command for request in ran] == ["ECHO"]


async def test_drop_rate_one_sends_no_reply_but_the_connection_lives(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    simulator.faults.drop_rate = 1.0
    await client.send(ECHO)

    with trio.move_on_after(0.5) as waited:
        await client.receive()
    assert waited.cancelled_caught, "a dropped reply must never arrive"
    await eventually(lambda: _count(simulator, "ECHO") == 1)

    simulator.faults.drop_rate = 0.0
    assert (await client.request(ECHO)).get("ER") == "00"


async def test_refuse_connections_closes_new_ones_before_tls(
    simulator: RunningSimulator,
) -> None:
    existing = await simulator.connect()
    simulator.faults.refuse_connections = True

    tcp = await simulator.connect_tcp()
    try:
        with trio.fail_after(3):
            assert await tcp.receive_some(100) == b""
    finally:
        await tcp.aclose()
    assert (await existing.request(ECHO)).get("ER") == "00"

    simulator.faults.refuse_connections = False
    assert (await (await simulator.connect()).request(ECHO)).get("ER") == "00"


async def test_outage_closes_open_connections_and_refuses_new_ones(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    simulator.faults.latency_ms = 2000
    await client.send(ECHO)  # in flight when the outage begins: never answered
    await trio.sleep(0.05)

    simulator.faults.outage = True

    assert await client.closed_by_server()
    try:
        refused = await simulator.connect()
        assert await refused.closed_by_server()
    except (trio.BrokenResourceError, ssl.SSLError):
        pass
    await eventually(lambda: simulator.stats.snapshot()["connections_open"] == 0)

    simulator.faults.clear()
    assert (await (await simulator.connect()).request(ECHO)).get("ER") == "00"


def _count(simulator: RunningSimulator, command: str) -> object:
    commands = simulator.stats.snapshot()["commands"]
    assert isinstance(commands, dict)
    return commands.get(command, {}).get("count", 0)
