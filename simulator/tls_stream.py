"""The server side of one host-protocol TLS connection, without the layers.

``trio.SSLStream`` over ``trio.SocketStream`` is general (any number of
tasks, renegotiation, locks) and goes through the scheduler after every
socket call, even one that did not block. Under load that was a large part
of the simulator's CPU per command (docs/performance.md). A host-protocol
connection needs less: one task receiving, and one task at a time sending
(the server holds a lock around sends). This stream runs the stdlib
``ssl.SSLObject`` over memory BIOs on the raw non-blocking socket and waits
(``trio.lowlevel.wait_readable`` / ``wait_writable``) only when the socket
would block, yielding to the scheduler every ``_YIELD_EVERY`` calls that did
not, so a busy client cannot starve the others.

Reads can produce TLS output (an alert, a TLS 1.3 KeyUpdate answer); all
output goes through ``_flush``, one task at a time, and a task that finds
another flushing leaves its bytes to it, so the order on the wire is kept.
Renegotiation is refused in the context (``server.server_tls_context``).
TLS errors become ``trio.BrokenResourceError`` with the ``ssl.SSLError`` as
their cause, as with ``trio.SSLStream``.

The stream owns its socket (``take`` detaches it from the accepted
``trio.SocketStream``); ``close`` ends it at once, even in a cancelled task.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import socket
import ssl
import termios
from typing import Any, Final

import trio

_RECEIVE_BYTES: Final = 65536
# Socket calls that did not block between two yields; chosen, not measured.
_YIELD_EVERY: Final = 16


class ServerTlsStream(trio.abc.Stream):
    """Server TLS over an accepted socket; ``do_handshake`` first."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._unsent = memoryview(b"")
        self._flushing = False
        self._calls = 0
        self._unread = array.array("i", [0])  # FIONREAD's answer

    @classmethod
    def take(cls, tcp: trio.SocketStream, context: ssl.SSLContext) -> ServerTlsStream:
        """A stream over ``tcp``'s socket, which ``tcp`` gives up."""
        return cls(socket.socket(fileno=tcp.socket.detach()), context)

    def getpeercert(self) -> dict[str, Any] | None:
        """The verified client certificate, as ``ssl.SSLSocket`` gives it."""
        return self._tls.getpeercert()

    async def do_handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except ssl.SSLError as exc:
                await self._flush_quietly()  # our alert, if any
                raise trio.BrokenResourceError(exc) from exc
        await self._flush()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        if not (self._incoming.pending or self._incoming.eof or self._tls.pending()):
            # Nothing received and nothing decrypted: ``read`` could only
            # raise SSLWantReadError, an exception that costs microseconds
            # to make, once per read of the connection.
            await self._fill()
        while True:
            try:
                data = self._tls.read(max_bytes or _RECEIVE_BYTES)
            except ssl.SSLWantReadError:
                await self._fill()
                continue
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as exc:
                await self._flush_quietly()
                raise trio.BrokenResourceError(exc) from exc
            if self._outgoing.pending:
                await self._flush()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(exc) from exc
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def aclose(self) -> None:
        """Close now, with a close_notify if the socket takes it at once."""
        if self.socket.fileno() != -1:
            # It wants the peer's close_notify, which we do not wait for.
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._tls.unwrap()
            with contextlib.suppress(OSError):
                self.socket.send(self._unsent.tobytes() + self._outgoing.read())
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close the socket at once, without a close_notify."""
        if self.socket.fileno() != -1:
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    async def _fill(self) -> None:
        self._check_open()
        if not self._bytes_waiting():
            # Nothing to read yet, the usual case when the client is not
            # ahead of us: wait at once rather than let ``recv`` fail.
            self._calls = 0
            await trio.lowlevel.wait_readable(self.socket)
        while True:
            self._check_open()
            try:
                data = self.socket.recv(_RECEIVE_BYTES)
            except BlockingIOError:
                self._calls = 0
                await trio.lowlevel.wait_readable(self.socket)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(exc) from exc
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()
            await self._yield_now_and_then()
            return

    def _bytes_waiting(self) -> bool:
        """Whether the socket has bytes to read, or cannot tell.

        A ``recv`` that fails with BlockingIOError costs about 2.1 us (the
        system call and the exception), this ``ioctl`` 0.75; at the rates the
        simulator serves, most reads find the socket empty. EOF and errors
        show as "nothing waiting" here and as readable to the wait.
        """
        try:
            fcntl.ioctl(self.socket.fileno(), termios.FIONREAD, self._unread, True)
        except OSError:
            return True  # let ``recv`` raise what is wrong
        return self._unread[0] > 0

    async def _flush(self) -> None:
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._unsent or self._outgoing.pending:
                if not self._unsent:
                    self._unsent = memoryview(self._outgoing.read())
                await self._send_some()
        finally:
            self._flushing = False

    async def _send_some(self) -> None:
        self._check_open()
        try:
            sent = self.socket.send(self._unsent)
        except BlockingIOError:
            self._calls = 0
            await trio.lowlevel.wait_writable(self.socket)
            return
        except OSError as exc:
            raise trio.BrokenResourceError(exc) from exc
        self._unsent = self._unsent[sent:]
        await self._yield_now_and_then()

    async def _yield_now_and_then(self) -> None:
        # Shielded: the bytes are already received or sent.
        self._calls += 1
        if self._calls >= _YIELD_EVERY:
            self._calls = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _flush_quietly(self) -> None:
        try:
            with trio.move_on_after(1.0):
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def _check_open(self) -> None:
        if self.socket.fileno() == -1:
            raise trio.ClosedResourceError("the TLS stream is closed")
