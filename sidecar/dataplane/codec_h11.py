"""The ``ServerCodec`` on h11, the pure-Python sans-IO HTTP/1.1 library.

h11 keeps the whole connection state machine: it frames our responses too,
decides keep-alive (it answers HTTP/1.0 and ``Connection: close`` requests,
then closes), and parses a pipelined request only once the previous response
has been sent, which gives the in-order answers for free.

Difference from the httptools codec: h11 does not say whether bytes of the
next pipelined request are already buffered, so ``request_in_progress`` only
turns true once new bytes arrive after a response; until then the keep-alive
idle timeout applies instead of the request timeout.
"""

from __future__ import annotations

from http import HTTPStatus

import h11

from sidecar.dataplane.codec import (
    FRAMING_HEADERS,
    Event,
    HttpProtocolError,
    RequestBody,
    RequestHead,
    Signal,
    head_from_fields,
)
from sidecar.dataplane.framing import DATE
from sidecar.dataplane.messages import Header, HttpResponse
from sidecar.dataplane.settings import HttpLimits


class H11Codec:
    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        # h11 counts the request line and headers against this (and answers
        # 431 when it is exceeded); it never buffers more than that for a head.
        self._conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=limits.max_header_bytes
        )
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._current: RequestHead | None = None
        self._partial = False
        self._failed = False

    def receive_data(self, data: bytes | bytearray) -> None:
        if data:
            self._partial = True
        self._conn.receive_data(bytes(data))  # bytes(b) is b itself: no copy

    def next_event(self) -> Event:
        while True:
            event = self._next_h11_event()
            if event is h11.NEED_DATA:
                return Signal.NEED_DATA
            if isinstance(event, h11.Request):
                self._current = self._head(event)
                return self._current
            if isinstance(event, h11.Data):
                self._add_body(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                return self._complete()
            if isinstance(event, h11.ConnectionClosed):
                return Signal.PEER_CLOSED
            raise RuntimeError(f"unexpected h11 event {event!r}")

    @property
    def request_in_progress(self) -> bool:
        return self._partial

    @property
    def keep_alive(self) -> bool:
        return not self._failed and self._conn.our_state is h11.DONE

    def continue_bytes(self) -> bytes:
        return self._send(h11.InformationalResponse(status_code=100, headers=[]))

    def response_bytes(self, response: HttpResponse, *, close: bool) -> bytes:
        head = h11.Response(
            status_code=response.status,
            headers=_response_headers(response, close=close),
            reason=_reason(response.status),
        )
        data = self._send(head)
        if response.body and not self._answering_head():
            data += self._send(h11.Data(data=response.body))
        return data + self._send(h11.EndOfMessage())

    def start_next_request(self) -> None:
        self._conn.start_next_cycle()
        self._current = None
        self._partial = False

    def _next_h11_event(self) -> object:
        try:
            return self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            self._failed = True
            raise _protocol_error(exc) from exc

    def _head(self, request: h11.Request) -> RequestHead:
        self._body = []
        self._body_bytes = 0
        try:
            return head_from_fields(
                request.method.decode("ascii"),
                request.target.decode("latin-1"),
                list(request.headers),
                request.http_version.decode("ascii"),
                self._limits,
            )
        except HttpProtocolError:
            self._failed = True
            raise

    def _add_body(self, chunk: bytes) -> None:
        self._body_bytes += len(chunk)
        if self._body_bytes > self._limits.max_body_bytes:  # h11 checked framing
            self._failed = True
            raise HttpProtocolError(413, "request body too large")
        self._body.append(chunk)

    def _complete(self) -> RequestBody:
        body = b"".join(self._body)
        self._body = []
        return RequestBody(body)

    def _answering_head(self) -> bool:
        return self._current is not None and self._current.method == "HEAD"

    def _send(self, event: h11.Event) -> bytes:
        data = self._conn.send(event)
        assert data is not None  # None only for ConnectionClosed, never sent
        return data


def _response_headers(response: HttpResponse, *, close: bool) -> list[Header]:
    headers = [
        (name, value)
        for name, value in response.headers
        if name.lower() not in FRAMING_HEADERS
    ]
    headers.append((b"date", DATE.value()))
    headers.append((b"content-length", b"%d" % len(response.body)))
    if close:
        headers.append((b"connection", b"close"))
    return headers


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _protocol_error(exc: h11.RemoteProtocolError) -> HttpProtocolError:
    # h11's messages may quote the peer's bytes; answer with our own words,
    # the same ones the httptools codec uses.
    status = exc.error_status_hint
    if status == 431:
        return HttpProtocolError(431, "request head too large")
    if status == 501:  # h11 says so only for a Transfer-Encoding it lacks
        return HttpProtocolError(411, "request bodies need Content-Length")
    return HttpProtocolError(400, "malformed HTTP request")
