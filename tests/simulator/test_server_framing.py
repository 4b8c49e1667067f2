"""Frames on a live connection: bad input answered, pipelining, limits, logs."""

from __future__ import annotations

import base64
import logging

import pytest
import trio

from simulator.hostproto.codec import ErrorCode, Frame, b64, encode_frame
from tests.simulator.conftest import HostClient, RunningSimulator, SimulatorFactory


async def receive(client: HostClient, count: int) -> list[Frame]:
    return [await client.receive() for _ in range(count)]


ECHO = Frame.of("ECHO", ID="after", DT=b64(b"still here"))


def assert_still_usable(reply: Frame) -> None:
    assert reply == Frame.of("ECHO", ID="after", ER="00", DT=b64(b"still here"))


@pytest.mark.parametrize(
    ("raw", "code", "reply_command", "reply_id"),
    [
        (b"[AOZZZZ;IDu1;]", ErrorCode.UNKNOWN_COMMAND, "ZZZZ", "u1"),
        (b"[AOECHO;IDm1;DTx;DTy;]", ErrorCode.MALFORMED_FRAME, "ECHO", "m1"),
        (b"[AOECHO;IDm2;DT\x01;]", ErrorCode.MALFORMED_FRAME, "ECHO", "m2"),
        (b"[AOECHO;IDm3;DTaGk=]", ErrorCode.MALFORMED_FRAME, "ECHO", "m3"),
        (b"[XXECHO;IDm4;]", ErrorCode.MALFORMED_FRAME, "ERRO", "m4"),
        (b"hello\r\n", ErrorCode.MALFORMED_FRAME, "ERRO", None),
        (b"[AOECHO;ID!bad!;]", ErrorCode.INVALID_FIELD, "ECHO", None),
    ],
    ids=[
        "unknown-command",
        "duplicate-tag",
        "control-character",
        "unterminated-field",
        "no-command-tag",
        "garbage",
        "invalid-id",
    ],
)
async def test_bad_input_is_answered_and_the_connection_stays_usable(
    simulator: RunningSimulator,
    raw: bytes,
    code: ErrorCode,
    reply_command: str,
    reply_id: str | None,
) -> None:
    client = await simulator.connect()
    await client.send_raw(raw)
    reply = await client.receive()

    assert reply.command == reply_command
    assert reply.get("ER") == code.value
    assert reply.get("ID") == reply_id
    assert_still_usable(await client.request(ECHO))


async def test_oversized_frame_is_refused_without_losing_the_next_one(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    # The test server's limit is 4096 bytes; send ten times that, in pieces.
    await client.send_raw(b"[AOECHO;IDbig;DT")
    for _ in range(10):
        await client.send_raw(b"A" * 4096)
    await client.send_raw(b";]" + encode_frame(ECHO))

    too_large = await client.receive()
    assert too_large.get("ER") == ErrorCode.FRAME_TOO_LARGE.value
    assert too_large.get("ID") == "big"
    assert_still_usable(await client.receive())


async def test_frame_of_exactly_the_limit_is_accepted_and_one_more_is_not(
    simulators: SimulatorFactory,
) -> None:
    simulator = await simulators.start(max_frame_bytes=1024)
    client = await simulator.connect()
    head, tail = b"[AOECHO;IDx;DT", b";]"
    fits = head + b"A" * (1024 - len(head) - len(tail)) + tail
    too_long = head.replace(b"x", b"y") + b"A" * 1012 + tail
    assert (len(fits), len(too_long)) == (1024, 1028)

    await client.send_raw(fits + too_long)

    replies = {reply.get("ID"): reply.get("ER") for reply in await receive(client, 2)}
    assert replies == {"x": ErrorCode.OK.value, "y": ErrorCode.FRAME_TOO_LARGE.value}


async def test_pipelined_requests_each_get_their_own_reply(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    requests = []
    for n in range(40):
        if n % 2:
            requests.append(
                Frame.of("ECHO", ID=f"e{n}", DT=b64(f"payload {n}".encode()))
            )
        else:
            pt = b64(f"secret {n}".encode())
            requests.append(Frame.of("GCEN", ID=f"g{n}", KL="foo", PT=pt))
    await client.send(*requests)

    replies = {
        reply.text("ID"): reply for reply in [await client.receive() for _ in requests]
    }

    assert set(replies) == {request.text("ID") for request in requests}
    for request in requests:
        reply = replies[request.text("ID")]
        assert reply.command == request.command
        assert reply.get("ER") == "00"
        if request.command == "ECHO":
            assert reply.get("DT") == request.get("DT")
    # Each ciphertext really is its own request's plaintext.
    sealed = replies["g4"]
    opened = await client.request(
        Frame.of(
            "GCDE",
            ID="check",
            KL="foo",
            KV=sealed.text("KV"),
            IV=sealed.text("IV"),
            CT=sealed.text("CT"),
            TG=sealed.text("TG"),
        )
    )
    assert base64.b64decode(opened.text("PT")) == b"secret 4"


async def test_slow_requests_do_not_hold_up_later_ones(
    simulators: SimulatorFactory,
) -> None:
    simulator = await simulators.start()
    client = await simulator.connect()
    simulator.faults.latency_ms = 300
    await client.send(Frame.of("ECHO", ID="slow"))
    await trio.sleep(0.1)
    simulator.faults.latency_ms = 0
    await client.send(Frame.of("ECHO", ID="fast"))

    first, second = await client.receive(), await client.receive()
    assert (first.get("ID"), second.get("ID")) == ("fast", "slow")


async def test_requests_over_the_in_flight_bound_are_answered_busy(
    simulators: SimulatorFactory,
) -> None:
    simulator = await simulators.start(max_in_flight=2)
    simulator.faults.latency_ms = 200
    client = await simulator.connect()
    await client.send(*(Frame.of("ECHO", ID=f"r{n}") for n in range(5)))

    replies = [await client.receive() for _ in range(5)]
    codes = {reply.text("ID"): reply.text("ER") for reply in replies}
    assert sorted(codes.values()) == ["00", "00", "30", "30", "30"]
    assert codes["r0"] == codes["r1"] == "00"


async def test_each_command_logs_one_line_without_secrets(
    simulator: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    client = await simulator.connect()
    secret, aad = b64(b"top secret plaintext"), b64(b"private aad value")
    sealed = await client.request(
        Frame.of("GCEN", ID="L1", KL="foo", PT=secret, AD=aad)
    )
    await client.request(
        Frame.of(
            "GCDE",
            ID="L2",
            KL="foo",
            KV="1",
            IV=sealed.text("IV"),
            CT=sealed.text("CT"),
            TG=sealed.text("TG"),
            AD=aad,
        )
    )

    lines = [r.getMessage() for r in caplog.records if r.name == "simulator.server"]
    command_lines = [line for line in lines if line.startswith("command ")]
    assert len(command_lines) == 2
    assert "command=GCEN id=L1 key=foo code=00" in command_lines[0]
    assert "command=GCDE id=L2 key=foo code=00" in command_lines[1]
    everything = caplog.text
    for value in (secret, aad, sealed.text("CT"), "top secret", "private aad"):
        assert value not in everything


async def test_stats_count_commands_and_connections(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    await client.request(Frame.of("ECHO"))
    await client.request(Frame.of("KINF", KL="missing"))
    await client.request(Frame.of("QQQQ"))

    snapshot = simulator.stats.snapshot()
    commands = snapshot["commands"]
    assert isinstance(commands, dict)
    assert commands["ECHO"]["count"] == 1
    assert commands["KINF"]["errors"] == 1
    assert commands["(unknown)"]["count"] == 1
    assert snapshot["connections_open"] == 1
    assert snapshot["connections_total"] == 1
