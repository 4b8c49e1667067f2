"""HTTP/1.1 behaviour over real TLS, with each parser library behind the codec."""

from __future__ import annotations

import json
import logging

import pytest
import trio

from fixtures.pki import Pki
from sidecar.dataplane import HttpLimits, HttpRequest, HttpResponse, ParserName
from tests.dataplane.client import ReplyReader, client_context, open_tls, raw_request
from tests.dataplane.servers import echo_handler, start_dataplane

SHORT = HttpLimits(idle_timeout=0.3, request_timeout=0.3, send_timeout=1.0)


async def _exchange(
    pki: Pki, nursery: trio.Nursery, parser: ParserName, data: bytes, count: int,
    handler: object = None, limits: HttpLimits | None = None,
    until_closed: bool = False,
) -> ReplyReader:  # fmt: skip
    """Start a server, send ``data`` on one connection, read ``count`` replies
    (and, if ``until_closed``, wait for the server to close)."""
    running = await start_dataplane(
        nursery, pki, handler or echo_handler, parser=parser, limits=limits
    )
    reader = ReplyReader()
    async with await open_tls(running.ports[0], client_context(pki)) as stream:
        await stream.send_all(data)
        await reader.read(stream, count)
        if until_closed and not reader.closed:
            assert await reader.wait_closed(stream) == b""
    return reader


async def test_keep_alive_serves_many_requests_on_one_connection(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    running = await start_dataplane(nursery, pki, parser=parser)
    reader = ReplyReader()

    async with await open_tls(running.ports[0], client_context(pki)) as stream:
        for number in range(100):
            await stream.send_all(raw_request(f"/r{number}", b"%d" % number))
            await reader.read(stream, number + 1)

    assert [r.body for r in reader.replies] == [b"%d" % n for n in range(100)]
    assert not reader.closed


async def test_pipelined_requests_are_answered_in_order(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    async def slow_first(request: HttpRequest) -> HttpResponse:
        if request.raw_path == "/0":
            await trio.sleep(0.05)
        return HttpResponse(200, body=request.raw_path.encode())

    data = b"".join(raw_request(f"/{n}", b"x" * n) for n in range(5))

    reader = await _exchange(pki, nursery, parser, data, 5, handler=slow_first)

    assert [r.body for r in reader.replies] == [b"/0", b"/1", b"/2", b"/3", b"/4"]


async def test_pipelined_garbage_after_good_requests_gets_400_after_them(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    data = raw_request("/a") + raw_request("/b") + b"NONSENSE\r\n\r\n"

    reader = await _exchange(pki, nursery, parser, data, 3, until_closed=True)

    assert [r.status for r in reader.replies] == [200, 200, 400]
    assert reader.closed


async def test_request_reaches_handler_as_sent(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    seen: list[HttpRequest] = []

    async def record(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(204)

    data = raw_request(
        "/kms/xks/v1/keys/foo/encrypt?x=%2F", b'{"a":1}',
        headers=(("X-Amz-Date", "20260101T000000Z"), ("Authorization", "AWS4 a, b")),
    )  # fmt: skip
    await _exchange(pki, nursery, parser, data, 1, handler=record)

    request = seen[0]
    assert request.method == "POST"
    assert request.raw_path == "/kms/xks/v1/keys/foo/encrypt?x=%2F"
    assert request.body == b'{"a":1}'
    assert request.http_version == "1.1"
    assert [name for name, _ in request.headers] == [
        b"host",
        b"x-amz-date",
        b"authorization",
        b"content-length",
    ]
    assert request.header(b"authorization") == b"AWS4 a, b"
    assert request.peer is not None
    assert request.peer[0] == "127.0.0.1"
    assert request.tls is not None
    assert request.tls.client_common_name is None


async def test_handler_framing_headers_are_replaced(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    async def lying(request: HttpRequest) -> HttpResponse:
        headers = ((b"Content-Length", b"999"), (b"Connection", b"close"))
        return HttpResponse(200, headers, b"four")

    data = raw_request("/a") + raw_request("/b")

    reader = await _exchange(pki, nursery, parser, data, 2, handler=lying)

    assert [r.body for r in reader.replies] == [b"four", b"four"]
    assert reader.replies[0].headers[b"content-length"] == b"4"
    assert b"connection" not in reader.replies[0].headers


async def test_largest_xks_request_body_is_accepted(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    # Spec maxima: 4300-byte plaintext and 8192-byte AAD, base64, plus
    # request metadata with 2048-character ARNs.
    body = json.dumps({
        "plaintext": "A" * 5736, "additionalAuthenticatedData": "B" * 10924,
        "requestMetadata": {"awsPrincipalArn": "C" * 2048, "kmsKeyArn": "D" * 2048},
    }).encode()  # fmt: skip

    reader = await _exchange(pki, nursery, parser, raw_request("/e", body), 1)

    assert reader.replies[0].status == 200
    assert reader.replies[0].body == body


async def test_oversized_body_gets_413_before_it_is_sent(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n"

    reader = await _exchange(pki, nursery, parser, head, 1, until_closed=True)

    assert reader.replies[0].status == 413
    assert reader.closed


async def test_oversized_head_gets_431_and_close(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    data = raw_request("/", headers=(("X-Big", "v" * 20000),))

    reader = await _exchange(pki, nursery, parser, data, 1, until_closed=True)

    assert reader.replies[0].status == 431
    assert reader.closed


async def test_too_many_header_fields_get_431(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    fields = tuple((f"X-H{n}", "1") for n in range(70))

    reader = await _exchange(pki, nursery, parser, raw_request("/", headers=fields), 1)

    assert reader.replies[0].status == 431


async def test_chunked_request_body_gets_411(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    data = raw_request(
        "/", b"3\r\nabc\r\n0\r\n\r\n", headers=(("Transfer-Encoding", "chunked"),),
        content_length=False,
    )  # fmt: skip

    reader = await _exchange(pki, nursery, parser, data, 1, until_closed=True)

    assert reader.replies[0].status == 411
    assert reader.closed


async def test_malformed_request_gets_400_json_and_close(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    reader = await _exchange(
        pki, nursery, parser, b"GET /\x01 HTTP/9\r\n\r\n", 1, until_closed=True
    )

    reply = reader.replies[0]
    assert reply.status == 400
    assert reply.headers[b"content-type"] == b"application/json"
    assert json.loads(reply.body)["errorName"] == "HttpError"
    assert reader.closed


async def test_expect_100_continue_gets_interim_response_before_body(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    running = await start_dataplane(nursery, pki, parser=parser)
    head = raw_request("/", headers=(("Expect", "100-continue"),), content_length=False)
    head = head[:-2] + b"Content-Length: 5\r\n\r\n"
    reader = ReplyReader()

    async with await open_tls(running.ports[0], client_context(pki)) as stream:
        await stream.send_all(head)
        await reader.read(stream, 1)
        await stream.send_all(b"hello")
        await reader.read(stream, 2)

    assert [r.status for r in reader.replies] == [100, 200]
    assert reader.replies[1].body == b"hello"


async def test_unknown_expectation_gets_417(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    data = raw_request("/", b"x", headers=(("Expect", "teapot"),))

    reader = await _exchange(pki, nursery, parser, data, 1)

    assert reader.replies[0].status == 417


async def test_http10_request_is_answered_then_closed(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    data = raw_request("/old", b"body", version="1.0")

    reader = await _exchange(pki, nursery, parser, data, 1, until_closed=True)

    assert reader.replies[0].body == b"body"
    assert reader.closed


async def test_head_response_carries_no_body(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    running = await start_dataplane(nursery, pki, parser=parser)
    data = raw_request("/", method="HEAD", headers=(("Connection", "close"),))

    async with await open_tls(running.ports[0], client_context(pki)) as stream:
        await stream.send_all(data)
        received = await ReplyReader().wait_closed(stream)

    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\n")


async def test_handler_crash_answers_500_without_details_and_logs_once(
    pki: Pki, nursery: trio.Nursery, parser: ParserName,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    async def crash(request: HttpRequest) -> HttpResponse:
        if request.raw_path == "/crash":
            raise RuntimeError("secret detail")
        return HttpResponse(200, body=b"fine")

    data = raw_request("/crash") + raw_request("/after")
    with caplog.at_level(logging.ERROR, logger="sidecar.dataplane"):
        reader = await _exchange(pki, nursery, parser, data, 2, handler=crash)

    crashed, after = reader.replies
    assert crashed.status == 500
    assert json.loads(crashed.body) == {
        "errorName": "InternalException", "errorMessage": "internal error"
    }  # fmt: skip
    assert b"secret" not in crashed.body
    assert b"Traceback" not in crashed.body
    assert after.body == b"fine"  # the connection survives
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert "secret detail" in caplog.text


async def test_idle_keep_alive_connection_is_closed_with_close_notify(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    running = await start_dataplane(nursery, pki, parser=parser, limits=SHORT)
    reader = ReplyReader()

    async with await open_tls(running.ports[0], client_context(pki)) as stream:
        await stream.send_all(raw_request("/"))
        await reader.read(stream, 1)
        started = trio.current_time()
        # A close without close_notify would raise BrokenResourceError here.
        assert await reader.wait_closed(stream) == b""

    assert 0.25 < trio.current_time() - started < 2


async def test_stalled_request_gets_408_and_close(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    partial = raw_request("/", b"12345")[:-3]

    reader = await _exchange(
        pki, nursery, parser, partial, 1, limits=SHORT, until_closed=True
    )

    assert reader.replies[0].status == 408
    assert reader.closed


async def test_connection_closes_after_max_requests(
    pki: Pki, nursery: trio.Nursery, parser: ParserName
) -> None:
    limits = HttpLimits(max_requests_per_connection=2)
    data = raw_request("/1") + raw_request("/2") + raw_request("/3")

    reader = await _exchange(
        pki, nursery, parser, data, 3, limits=limits, until_closed=True
    )

    assert len(reader.replies) == 2
    assert reader.replies[1].headers[b"connection"] == b"close"
    assert reader.closed
