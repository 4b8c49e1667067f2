"""Test-side HTTP/1.1 client pieces: raw requests out, parsed responses in.

Requests are written as raw bytes on purpose, so a test can send exactly the
malformed, pipelined or partial input it is about. Responses are parsed with
httptools' response parser, which (unlike an h11 client) accepts responses to
requests it did not itself send.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import trio

from fixtures.pki import Pki


def raw_request(
    path: str = "/",
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: tuple[tuple[str, str], ...] = (),
    version: str = "1.1",
    content_length: bool = True,
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: xks.example.test"]
    lines += [f"{name}: {value}" for name, value in headers]
    if content_length and (body or method == "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


@dataclass
class ReplyReader:
    """Collects every response on one connection, in order."""

    replies: list[Reply] = field(default_factory=list)
    closed: bool = False
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _body: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        self.replies.append(Reply(status, self._headers, b"".join(self._body)))
        self._headers, self._body = {}, []

    async def read(self, stream: trio.abc.Stream, count: int) -> list[Reply]:
        """Wait (at most 5 s) for ``count`` replies in all, or for EOF."""
        with trio.fail_after(5):
            while len(self.replies) < count and not self.closed:
                data = await stream.receive_some(65536)
                if not data:
                    self.closed = True
                    break
                self._parser.feed_data(data)
        return self.replies

    async def wait_closed(self, stream: trio.abc.Stream) -> bytes:
        """Read until EOF (at most 5 s); return what came before it."""
        received = b""
        with trio.fail_after(5):
            while data := await stream.receive_some(65536):
                received += data
        self.closed = True
        return received


def client_context(
    pki: Pki, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.public_root_cert))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def open_tls(
    port: int, context: ssl.SSLContext
) -> trio.SSLStream[trio.SocketStream]:
    """A TLS client connection to 127.0.0.1:``port``, handshake done.

    ``https_compatible`` is off, so a server that closes without close_notify
    makes reads fail: the tests see that the data plane closes properly.
    """
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, context, server_hostname="localhost")
    await stream.do_handshake()
    return stream
