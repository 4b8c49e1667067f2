"""The ``ServerCodec`` on httptools (llhttp, Node.js's HTTP parser).

httptools parses everything it is fed at once and reports through callbacks,
so several pipelined requests may be parsed by a single ``feed_data``. The
callbacks queue events; ``next_event`` hands them out one request at a time.
More bytes are fed only once the queue is empty, so the queue never holds more
than one read's worth of requests. A parse error is queued behind the requests
parsed before it, so those are still answered in order before the 400.

llhttp has no size limit of its own. The callbacks count the request line
and every complete header field exactly; a header line still incomplete is
bounded by counting raw bytes fed while the head is open (at most one read
beyond the limit can slip in before the check).
"""

from __future__ import annotations

from collections import deque

import httptools

from sidecar.dataplane.codec import (
    Event,
    HttpProtocolError,
    RequestBody,
    RequestHead,
    Signal,
    head_from_fields,
)
from sidecar.dataplane.framing import CONTINUE_BYTES, frame_response
from sidecar.dataplane.messages import Header, HttpResponse
from sidecar.dataplane.settings import HttpLimits


class HttptoolsCodec:
    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Event | HttpProtocolError] = deque()
        self._failed = False
        self._eof = False
        self._in_message = False
        self._head_open = False
        self._head_exact = 0  # request line and complete fields, as counted
        self._head_raw = 0  # bytes fed while the head was open: a lower bound
        self._url = b""
        self._headers: list[Header] = []
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._current: RequestHead | None = None
        # One flag per parsed head, handed out with it: with pipelining the
        # parser may be several requests ahead of the one being answered.
        self._keep_alive_flags: deque[bool] = deque()
        self._keep_alive = True

    # -- ServerCodec ---------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        if self._failed:
            return
        if not data:
            self._receive_eof()
            return
        if self._head_open:
            self._head_raw += len(data)
        try:
            self._parser.feed_data(data)
        except HttpProtocolError as exc:
            self._fail(exc)
        except httptools.HttpParserUpgrade:
            self._fail(HttpProtocolError(400, "protocol upgrade not supported"))
        except httptools.HttpParserError as exc:
            self._fail(_unwrap(exc))
        self._check_open_head()

    def next_event(self) -> Event:
        if self._events:
            event = self._events.popleft()
            if isinstance(event, HttpProtocolError):
                raise event
            if isinstance(event, RequestHead):
                self._current = event
                self._keep_alive = self._keep_alive_flags.popleft()
            return event
        if self._eof:
            return Signal.PEER_CLOSED
        return Signal.NEED_DATA

    @property
    def request_in_progress(self) -> bool:
        return self._in_message

    @property
    def keep_alive(self) -> bool:
        return self._keep_alive

    def continue_bytes(self) -> bytes:
        return CONTINUE_BYTES

    def response_bytes(self, response: HttpResponse, *, close: bool) -> bytes:
        if close:
            self._keep_alive = False
        head_only = self._current is not None and self._current.method == "HEAD"
        return frame_response(response, close=not self.keep_alive, head_only=head_only)

    def start_next_request(self) -> None:
        self._current = None

    # -- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._head_open = True
        self._head_exact = 0
        self._head_raw = 0
        self._url = b""
        self._headers = []
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        # _count_head inline: this runs for every header of every request.
        self._head_exact += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_exact > self._limits.max_header_bytes:
            raise HttpProtocolError(431, "request head too large")

    def on_headers_complete(self) -> None:
        self._head_open = False
        version = self._parser.get_http_version()
        # HTTP/1.0 keep-alive is an extension h11 does not implement either;
        # both codecs answer an HTTP/1.0 request and close.
        keep_alive = self._parser.should_keep_alive() and version != "1.0"
        method = self._parser.get_method().decode("ascii")
        head = head_from_fields(
            method,
            self._url.decode("latin-1"),
            self._headers,
            version,
            self._limits,
            # Counted as _check_head_size counts: the URL and fields so far,
            # plus the method and the request line's spaces, version, CRLF.
            self._head_exact + len(method) + 12,
        )
        self._keep_alive_flags.append(keep_alive)
        self._events.append(head)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._limits.max_body_bytes:
            raise HttpProtocolError(413, "request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._events.append(RequestBody(b"".join(self._body)))
        self._body = []

    # -- helpers ---------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self._head_exact += size
        if self._head_exact > self._limits.max_header_bytes:
            raise HttpProtocolError(431, "request head too large")

    def _check_open_head(self) -> None:
        # While the head stays open, every byte fed since it opened (but part
        # of the read it opened in) belongs to it, so _head_raw never exceeds
        # the true size: the check cannot fire on a head within the limit.
        if self._head_open and self._head_raw > self._limits.max_header_bytes:
            self._fail(HttpProtocolError(431, "request head too large"))

    def _receive_eof(self) -> None:
        self._eof = True
        if self._in_message:
            self._fail(HttpProtocolError(400, "connection closed mid-request"))

    def _fail(self, error: HttpProtocolError) -> None:
        if not self._failed:
            self._failed = True
            self._events.append(error)


def _unwrap(exc: httptools.HttpParserError) -> HttpProtocolError:
    # An exception raised in one of our callbacks reaches us wrapped in
    # HttpParserCallbackError, with ours as its context.
    if isinstance(exc.__context__, HttpProtocolError):
        return exc.__context__
    return HttpProtocolError(400, "malformed HTTP request")
