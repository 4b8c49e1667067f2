"""The small sans-IO interface between the connection loop and an HTTP parser.

Two parser libraries sit behind it, h11 (``codec_h11``) and httptools
(``codec_httptools``); docs/dataplane.md records which is faster on the full
path and why it is the default. Both apply the same policy, in
``head_from_fields``, so the choice of library changes speed, not behaviour.

A codec takes bytes (``receive_data``) and hands out events
(``next_event``), one request at a time, in the order received: pipelined
requests are answered in order because the loop asks for the next request
only after writing the previous response.

Policy (RFC 9112 / RFC 9110 sections cited where applied):

* request bodies are framed by Content-Length only; any Transfer-Encoding is
  refused with 411 Length Required and the connection closed (KMS sends
  Content-Length; not reading chunked bodies keeps the framing code small);
* a declared body larger than the limit gets 413 before it is read, and a
  head larger than the limit, or with too many fields, gets 431;
* ``Expect: 100-continue`` gets an interim 100 before the body is read (RFC
  9110 section 10.1.1); any other expectation gets 417;
* malformed HTTP gets 400; every error answer closes the connection, since
  the rest of the byte stream can no longer be trusted to be framed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.dataplane.messages import Header, Headers, HttpResponse
from sidecar.dataplane.settings import HttpLimits


class HttpProtocolError(Exception):
    """The peer broke HTTP/1.1 or a limit; answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The request line and headers, complete; the body may still be coming."""

    method: str
    target: str
    headers: Headers
    http_version: str
    content_length: int
    expects_continue: bool


@dataclass(frozen=True, slots=True)
class RequestBody:
    """The whole body; the request is complete."""

    body: bytes


class Signal(enum.Enum):
    NEED_DATA = "need-data"  # feed more bytes, then ask again
    PEER_CLOSED = "peer-closed"  # clean EOF between requests


Event = RequestHead | RequestBody | Signal


class ServerCodec(Protocol):
    """One HTTP/1.1 server connection's parsing and framing state."""

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed."""

    def next_event(self) -> Event:
        """The next event; raises HttpProtocolError on bad input."""

    @property
    def request_in_progress(self) -> bool:
        """Whether part of a request has arrived (for the timeout choice)."""

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this one."""

    def continue_bytes(self) -> bytes:
        """The interim ``100 Continue`` response."""

    def response_bytes(self, response: HttpResponse, *, close: bool) -> bytes:
        """Frame ``response`` to the current request; ``close`` ends the
        connection after it (sends ``Connection: close``)."""

    def start_next_request(self) -> None:
        """Forget the answered request; parse the next (pipelined) one."""


# Framing headers are the data plane's business, never the handler's.
FRAMING_HEADERS = frozenset({b"content-length", b"connection", b"transfer-encoding"})


def head_from_fields(
    method: str,
    target: str,
    headers: Sequence[Header],
    http_version: str,
    limits: HttpLimits,
    head_size: int | None = None,
) -> RequestHead:
    """Apply the shared request policy (module docstring) to a parsed head.

    ``head_size``: its size in bytes if the parser counted it already, as
    ``_check_head_size`` would (request line and "name: value" CRLF lines).
    """
    _check_head_size(method, target, headers, limits, head_size)
    content_length = 0
    expects_continue = False
    for name, value in headers:
        if name == b"transfer-encoding":
            raise HttpProtocolError(411, "request bodies need Content-Length")
        if name == b"content-length":
            content_length = _content_length(value, limits)
        elif name == b"expect":
            expects_continue = _expects_continue(value, http_version)
    return RequestHead(
        method, target, tuple(headers), http_version, content_length, expects_continue
    )


def _check_head_size(
    method: str,
    target: str,
    headers: Sequence[Header],
    limits: HttpLimits,
    size: int | None,
) -> None:
    if len(headers) > limits.max_header_count:
        raise HttpProtocolError(431, "too many header fields")
    # Parsers bound a head that arrives piecemeal; one that arrives whole in
    # a single read is measured here: request line, then "name: value" CRLF.
    if size is None:
        size = len(method) + len(target) + 12
        size += sum(len(name) + len(value) + 4 for name, value in headers)
    if size > limits.max_header_bytes:
        raise HttpProtocolError(431, "request head too large")


def _content_length(value: bytes, limits: HttpLimits) -> int:
    # Both parsers have already rejected a malformed or conflicting value
    # (RFC 9112 section 6.3); this only reads the number they accepted.
    length = int(value)
    if length > limits.max_body_bytes:
        raise HttpProtocolError(413, "request body too large")
    return length


def _expects_continue(value: bytes, http_version: str) -> bool:
    if value.strip().lower() != b"100-continue":
        raise HttpProtocolError(417, "unsupported expectation")
    # RFC 9110 section 10.1.1: a server "MUST ignore" 100-continue in an
    # HTTP/1.0 request.
    return http_version != "1.0"
