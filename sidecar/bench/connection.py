"""One keep-alive HTTPS connection that carries one request at a time.

KMS keeps connections open and sends one request per connection at a time
(HTTP/1.1 without pipelining), so a connection is either free or waiting for
one response. Responses are parsed by httptools' C parser: at 2,000
requests a second the parser's cost matters, and it accepts a stream of
responses without having built the requests itself.

Every failure of the socket, TLS or HTTP framing becomes ``TransportError``
with a short reason, and leaves the connection unusable: after a failure or
a cancelled exchange nobody can tell where the next response would start.

TLS runs on ``sidecar.client_tls.ClientTlsStream`` (``ssl.SSLObject`` over
memory BIOs on the raw socket, waiting only when the socket would block)
rather than ``trio.SSLStream`` over ``trio.SocketStream``, whose locks,
conflict detectors and scheduler round trip after every socket call were
about a third of the tool's CPU per request at 1,000 requests a second
(py-spy). ``give_up`` lets the slot's give-up reaper interrupt a waiting
exchange without a cancel scope per request (``slot``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httptools
import trio

from sidecar.client_tls import ClientTlsStream, open_client_tls_stream

_RECEIVE_SIZE = 65536


class TransportError(Exception):
    """The connection failed; ``reason`` is short enough to count by."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to connect."""

    host: str  # address to connect to
    port: int
    context: ssl.SSLContext
    server_name: str  # SNI and the name the certificate must match


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


class _Reader:
    """httptools callbacks: collects one response at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.done = False
        self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        # Asked here: once the callback returns the parser has reset.
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True


class HttpConnection:
    """A TLS connection; ``exchange`` sends a request and reads its response."""

    def __init__(self, stream: ClientTlsStream) -> None:
        self._stream = stream
        self._reader = _Reader()
        self.usable = True

    @classmethod
    async def open(cls, target: Target) -> HttpConnection:
        """Connect and complete the TLS handshake, or raise TransportError."""
        try:
            stream = await open_client_tls_stream(
                target.host, target.port, target.context, target.server_name
            )
        except OSError as exc:
            raise TransportError(f"connect: {_describe(exc)}") from exc
        except trio.BrokenResourceError as exc:
            raise TransportError(f"TLS handshake: {_describe(exc)}") from exc
        return cls(stream)

    async def exchange(self, request: bytes) -> Response:
        """Send ``request`` and return its response; raise TransportError.

        ``trio.ClosedResourceError`` when ``give_up`` interrupted it.
        """
        self.usable = False  # until a whole response has been read
        try:
            await self._stream.send_all(request)
            response = await self._read_response()
        except (trio.BrokenResourceError, OSError, ssl.SSLError) as exc:
            raise TransportError(_describe(exc)) from exc
        except httptools.HttpParserError as exc:
            raise TransportError("malformed HTTP response") from exc
        self.usable = self._reader.keep_alive
        return response

    async def _read_response(self) -> Response:
        reader = self._reader
        reader.done, reader.body = False, []
        while not reader.done:
            data = await self._receive()
            if not data:
                raise TransportError("closed by server")
            reader.parser.feed_data(data)
        return Response(reader.parser.get_status_code(), b"".join(reader.body))

    async def _receive(self) -> bytes:
        try:
            return await self._stream.receive_some(_RECEIVE_SIZE)
        except trio.BrokenResourceError as exc:
            # A TCP close without close_notify ends the stream, as for any
            # HTTPS client (and trio.SSLStream's ``https_compatible``).
            if isinstance(exc.__cause__, ssl.SSLEOFError):
                return b""
            raise

    def give_up(self) -> None:
        """Wake an exchange waiting on the socket with ClosedResourceError.

        Synchronous, for the reaper task; the waiting task then closes the
        connection itself (``aclose``).
        """
        self.usable = False
        trio.lowlevel.notify_closing(self._stream.socket)

    async def aclose(self) -> None:
        self.usable = False
        await trio.aclose_forcefully(self._stream)


def _describe(exc: BaseException) -> str:
    """A reason to count by: the class of error, not addresses or bytes."""
    if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None:
        return _describe(exc.__cause__)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"SSL {exc.reason}"
    if type(exc) is OSError:  # e.g. trio's "all attempts to connect ... failed"
        return str(exc)[:100] or "OSError"
    return type(exc).__name__
