"""The listener: graceful shutdown, connection limit, ping port, plain HTTP."""

from __future__ import annotations

import json

import pytest
import trio

from fixtures.pki import Pki
from sidecar.dataplane import (
    DataplaneConfig,
    HttpRequest,
    HttpResponse,
    RunningDataplane,
    serve_dataplane,
)
from tests.dataplane.client import ReplyReader, client_context, open_tls, raw_request
from tests.dataplane.servers import echo_handler, start_dataplane, tls_settings


class Gate:
    """A handler that holds every request until ``release`` is called."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.released = trio.Event()

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.raw_path == "/held":
            self.entered.set()
            await self.released.wait()
        return HttpResponse(200, body=b"done")


async def _start_tracked(
    nursery: trio.Nursery, config: DataplaneConfig, handler: object
) -> tuple[RunningDataplane, trio.Event]:
    """Start the listener; the event is set when ``serve_dataplane`` returns."""
    finished = trio.Event()

    async def serve(task_status: trio.TaskStatus[RunningDataplane]) -> None:
        await serve_dataplane(config, handler, task_status=task_status)  # type: ignore[arg-type]
        finished.set()

    running = await nursery.start(serve)
    return running, finished


def _config(pki: Pki, **overrides: object) -> DataplaneConfig:

    return DataplaneConfig(port=0, tls=tls_settings(pki), **overrides)  # type: ignore[arg-type]


async def test_graceful_shutdown_finishes_in_flight_request_and_closes_idle_ones(
    pki: Pki, nursery: trio.Nursery
) -> None:
    gate = Gate()
    running, finished = await _start_tracked(nursery, _config(pki), gate)
    port, context = running.ports[0], client_context(pki)
    busy, idle = ReplyReader(), ReplyReader()

    async with (
        await open_tls(port, context) as busy_stream,
        await open_tls(port, context) as idle_stream,
    ):
        await idle_stream.send_all(raw_request("/quick"))
        await idle.read(idle_stream, 1)
        await busy_stream.send_all(raw_request("/held"))
        await gate.entered.wait()

        running.request_shutdown()

        assert await idle.wait_closed(idle_stream) == b""  # at once, cleanly
        assert not finished.is_set()
        with pytest.raises(OSError, match="failed"):  # no longer accepting
            await trio.open_tcp_stream("127.0.0.1", port)
        gate.released.set()
        await busy.read(busy_stream, 1)
        assert await busy.wait_closed(busy_stream) == b""

    assert busy.replies[0].body == b"done"
    assert busy.replies[0].headers[b"connection"] == b"close"
    with trio.fail_after(2):
        await finished.wait()


async def test_shutdown_grace_period_bounds_a_stuck_request(
    pki: Pki, nursery: trio.Nursery
) -> None:
    gate = Gate()  # never released
    running, finished = await _start_tracked(
        nursery, _config(pki, shutdown_grace=0.2), gate
    )

    async with await open_tls(running.ports[0], client_context(pki)) as stream:
        await stream.send_all(raw_request("/held"))
        await gate.entered.wait()
        running.request_shutdown()

        with trio.fail_after(2):
            await finished.wait()
        reader = ReplyReader()
        with pytest.raises(trio.BrokenResourceError):  # cut off: no reply
            await reader.read(stream, 1)
    assert reader.replies == []


async def test_connection_limit_holds_new_connections_until_a_slot_frees(
    pki: Pki, nursery: trio.Nursery
) -> None:
    running = await start_dataplane(nursery, pki, max_connections=1)
    port, context = running.ports[0], client_context(pki)
    second_answered = trio.Event()

    async def second_client() -> None:
        async with await open_tls(port, context) as stream:
            await stream.send_all(raw_request("/second"))
            await ReplyReader().read(stream, 1)
            second_answered.set()

    async with await open_tls(port, context) as first:
        await first.send_all(raw_request("/first"))
        await ReplyReader().read(first, 1)
        nursery.start_soon(second_client)
        await trio.sleep(0.3)
        assert not second_answered.is_set()
        assert running.open_connections == 1
    with trio.fail_after(2):
        await second_answered.wait()


async def test_ping_listener_answers_load_balancer_probes_in_plain_http(
    pki: Pki, nursery: trio.Nursery
) -> None:
    running = await start_dataplane(nursery, pki, mtls=True, ping_port=0)
    probes = (
        raw_request("/ping", method="GET")
        + raw_request("/ping")
        + raw_request("/elsewhere", method="GET")
    )
    reader = ReplyReader()

    async with await trio.open_tcp_stream("127.0.0.1", running.ping_ports[0]) as tcp:
        await tcp.send_all(probes)
        await reader.read(tcp, 3)

    ok, post, missing = reader.replies
    assert (ok.status, json.loads(ok.body)) == (200, {"status": "ok"})
    assert post.status == 405
    assert missing.status == 404


def test_plain_http_needs_the_development_flag() -> None:
    with pytest.raises(ValueError, match="allow_plaintext_for_development"):
        DataplaneConfig(port=0)


async def test_plain_http_serves_when_explicitly_allowed(nursery: trio.Nursery) -> None:
    config = DataplaneConfig(port=0, allow_plaintext_for_development=True)
    running = await nursery.start(serve_dataplane, config, echo_handler)
    reader = ReplyReader()

    async with await trio.open_tcp_stream("127.0.0.1", running.ports[0]) as tcp:
        await tcp.send_all(raw_request("/plain", b"hi"))
        await reader.read(tcp, 1)

    assert reader.replies[0].body == b"hi"


async def test_worker_processes_can_share_the_port_with_reuse_port(
    pki: Pki, nursery: trio.Nursery
) -> None:
    first = await start_dataplane(nursery, pki, reuse_port=True)

    second = await start_dataplane(nursery, pki, reuse_port=True, port=first.ports[0])

    assert second.ports == first.ports


async def test_without_reuse_port_a_second_bind_fails(
    pki: Pki, nursery: trio.Nursery
) -> None:
    first = await start_dataplane(nursery, pki)

    with pytest.raises(OSError, match="in use"):
        await start_dataplane(nursery, pki, port=first.ports[0])


async def test_tcp_probe_closing_before_the_handshake_is_logged_quietly(
    pki: Pki, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """A load balancer's TCP check connects and closes: no error, no traceback."""
    running = await start_dataplane(nursery, pki)
    port = running.ports[0]

    probe = await trio.open_tcp_stream("127.0.0.1", port)
    await probe.aclose()
    await trio.sleep(0.2)  # let the listener notice the EOF and log it

    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
    stream = await open_tls(port, client_context(pki))
    await stream.send_all(raw_request("/after-probe"))
    replies = await ReplyReader().read(stream, 1)
    await stream.aclose()
    assert [reply.status for reply in replies] == [200]
