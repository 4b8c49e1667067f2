"""Writing HTTP/1.1 responses: status line, headers, Content-Length, body.

Used by the httptools codec (httptools parses only) and for the error answers
both codecs send before closing. Parsing stays with the libraries; writing a
response needs no parser, only care that no handler-supplied header can split
the response (CR/LF) or override the framing.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from sidecar.dataplane.codec import FRAMING_HEADERS
from sidecar.dataplane.messages import Headers, HttpResponse, json_response


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


_STATUS_LINES = {status.value: _status_line(status.value) for status in HTTPStatus}
CONTINUE_BYTES = b"HTTP/1.1 100 Continue\r\n\r\n"


class _DateCache:
    """The Date header, formatted once per second.

    RFC 9110 section 6.6.1: an origin server with a clock MUST send Date in
    2xx, 3xx and 4xx responses. Formatting it costs more than writing the
    rest of a small response, so it is reused within the same second.
    """

    def __init__(self) -> None:
        self._second = -1
        self._value = b""
        self._header = b""

    def value(self) -> bytes:
        """The current date as an IMF-fixdate (RFC 9110 section 5.6.7)."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
            self._header = b"date: " + self._value + b"\r\n"
        return self._value

    def header(self) -> bytes:
        """The whole ``date`` header line, CRLF included."""
        self.value()
        return self._header


DATE = _DateCache()


def frame_response(response: HttpResponse, *, close: bool, head_only: bool) -> bytes:
    """The bytes of ``response``; ``head_only`` for an answer to HEAD."""
    return b"".join(
        (
            _STATUS_LINES.get(response.status) or _status_line(response.status),
            _header_lines(response.headers),
            DATE.header(),
            b"content-length: %d\r\n" % len(response.body),
            b"connection: close\r\n\r\n" if close else b"\r\n",
            b"" if head_only else response.body,
        )
    )


# Header blocks already checked, by the handler's headers (a handler answers
# with a few fixed sets). Bounded so that handlers building headers per
# response cannot grow it; the size is chosen without measuring.
_CHECKED: dict[Headers, bytes] = {}
_CHECKED_MAX = 64


def _header_lines(headers: Headers) -> bytes:
    """``headers`` as lines, framing headers left out; ValueError on CR/LF."""
    lines = _CHECKED.get(headers)
    if lines is None:
        lines = _checked_header_lines(headers)
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()
        _CHECKED[headers] = lines
    return lines


def _checked_header_lines(headers: Headers) -> bytes:
    parts: list[bytes] = []
    for name, value in headers:
        if name.lower() in FRAMING_HEADERS:
            continue
        if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
            raise ValueError("response header contains CR or LF")
        parts += (name, b": ", value, b"\r\n")
    return b"".join(parts)


def error_response(status: int, reason: str) -> HttpResponse:
    """The small JSON body sent with a protocol-level error before closing."""
    return json_response(status, {"errorName": "HttpError", "errorMessage": reason})
