"""HTTP/1.1 as bytes: requests formatted by hand, replies parsed by httptools.

Requests go out as raw bytes we format ourselves, so a test can send exactly
the malformed or tampered request it is about. ``expect_ok`` and
``expect_error`` are the assertions every test makes on a reply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httptools
import trio

from tests.e2e.bodies import Json

JSON = "application/json"

Headers = list[tuple[str, str]]


class ConnectionClosed(Exception):
    """The server closed the connection before a complete reply."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased; last value wins
    body: bytes

    def json(self) -> Json:
        doc = json.loads(self.body)
        assert isinstance(doc, dict), self.body
        return doc

    @property
    def error_name(self) -> str | None:
        try:
            name = self.json().get("errorName")
        except ValueError:
            return None
        return name if isinstance(name, str) else None

    def __str__(self) -> str:  # what a failed assertion shows
        return f"HTTP {self.status} {self.body[:300]!r}"


class ReplyParser:
    """httptools callbacks; collects complete responses in order."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.replies.append(Reply(status, self._headers, b"".join(self._body)))
        self._headers, self._body = {}, []


def format_request(method: str, target: str, headers: Headers, body: bytes) -> bytes:
    """An HTTP/1.1 request as bytes; Content-Length is added here."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def plain_http_get(host: str, port: int, path: str) -> Reply:
    """One GET over plain HTTP (the load balancer's probe has no TLS)."""
    parser = ReplyParser()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(request.encode("ascii"))
        with trio.fail_after(5):
            while not parser.replies and (data := await stream.receive_some(65536)):
                parser.parser.feed_data(data)
    assert parser.replies, f"no reply to GET {path} on port {port}"
    return parser.replies[0]


def expect_ok(reply: Reply) -> Json:
    assert reply.status == 200, str(reply)
    return reply.json()


def expect_error(reply: Reply, status: int, error_name: str) -> None:
    assert (reply.status, reply.error_name) == (status, error_name), str(reply)
