"""The client side of a TLS connection, without the layers.

``trio.SSLStream`` over ``trio.SocketStream`` is general: any number of
tasks, renegotiation, locks and conflict detectors, and a scheduler round
trip after every socket call even when it did not block. On the host link
that was about a third of the sidecar's CPU per HSM command (profiled with
tests/bench/stack_bench.py, docs/performance.md). This stream serves what
the CryptoHub backend's ``HostConnection`` and the load tool's connections
need: one task receiving and one task sending, at the same time. It runs the
stdlib ``ssl.SSLObject`` over memory BIOs on the raw non-blocking socket,
and waits (``trio.lowlevel.wait_readable`` and ``wait_writable``) only when
the socket would block, or, for reading, once the last read emptied it
(``_fill``). A wait is the only checkpoint: a call that did not need one
goes through without a trip through the scheduler, but for one every
``_YIELD_EVERY`` calls. ``send_nowait`` never waits at all: it is how a
request sends its own frame without risking its deadline on a full socket.

Reads can make TLS output too (a TLS 1.3 KeyUpdate answer, an alert). All
output goes through ``_flush``, run by one task at a time: a task that finds
another one flushing leaves its bytes to it, since that task sends until the
outgoing BIO is empty. So ``send_all`` may return with its records handed to
the other task rather than to the kernel; the order on the wire is kept.

The caller's context must refuse renegotiation (the CryptoHub backend's
``tls.py`` does; TLS 1.3 has none), so no read ever has to wait for a write
of ours, or a write for a read. TLS errors become
``trio.BrokenResourceError`` with the ``ssl.SSLError`` as cause, as with
``trio.SSLStream``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Final

import trio

_RECEIVE_BYTES: Final = 65536  # one read's worth; a default-size frame fits
# Socket calls that did not block between two yields to the scheduler, so a
# node that keeps the socket full cannot starve the other tasks. Chosen, not
# measured.
_YIELD_EVERY: Final = 16


class ClientTlsStream(trio.abc.Stream):
    """Client TLS over a connected socket; ``do_handshake`` first."""

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        server_hostname: str,
        *,
        wait_before_read: bool = True,
    ) -> None:
        sock.setblocking(False)
        self._wait_before_read = wait_before_read
        self.socket = sock  # public: the connection asks it for unread bytes
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._unsent = memoryview(b"")
        self._flushing = False
        self._closed = False
        self._drained = True  # the last recv left nothing in the socket
        self._calls = 0  # socket calls that did not block since the last yield

    async def do_handshake(self) -> None:
        """Run the TLS handshake; BrokenResourceError if it fails."""
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except ssl.SSLError as exc:
                await self._flush_quietly()  # our alert, if any
                raise trio.BrokenResourceError(f"TLS handshake: {exc}") from exc
        await self._flush()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Application data, or b"" once the node sent close_notify."""
        while True:
            if self._nothing_to_decrypt():
                await self._fill()
                continue
            try:
                data = self._tls.read(max_bytes or _RECEIVE_BYTES)
            except ssl.SSLWantReadError:
                await self._fill()
                continue
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as exc:
                await self._flush_quietly()
                raise trio.BrokenResourceError(f"TLS: {exc}") from exc
            if self._outgoing.pending:
                await self._flush()
            return data

    def _nothing_to_decrypt(self) -> bool:
        """True when a read could only raise SSLWantReadError: no bytes of
        the peer's wait in the incoming BIO, none decrypted in the TLS
        object, and no EOF to report. Checked first because most reads
        find nothing (the reply has not come yet), and the exception costs
        more than the read (about 2 us here, docs/performance.md)."""
        incoming = self._incoming
        return not (incoming.pending or incoming.eof or self._tls.pending())

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._encrypt(data)
        await self._flush()

    def send_nowait(self, data: bytes | bytearray | memoryview) -> bool:
        """Encrypt ``data`` and hand the kernel what it takes now, never
        waiting; True if all of it went. What did not stays queued in the
        stream, ahead of any later data, for ``flush`` (or the next send)."""
        self._encrypt(data)
        if self._flushing:
            return False  # the task flushing now sends our records too
        unsent = self._unsent
        while unsent or self._outgoing.pending:
            if not unsent:
                unsent = memoryview(self._outgoing.read())
            try:
                sent = self.socket.send(unsent)
            except BlockingIOError:
                break
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket: {exc}") from exc
            unsent = unsent[sent:]
        self._unsent = unsent
        return not unsent and not self._outgoing.pending

    async def flush(self) -> None:
        """Send whatever ``send_nowait`` left queued."""
        await self._flush()

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS: {exc}") from exc

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def aclose(self) -> None:
        """Close now, with a close_notify if the socket takes it at once."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        # It wants the peer's close_notify, which we do not wait for.
        with contextlib.suppress(ssl.SSLError, ValueError):
            self._tls.unwrap()
        with contextlib.suppress(OSError):
            self.socket.send(self._unsent.tobytes() + self._outgoing.read())
        trio.lowlevel.notify_closing(self.socket)
        self.socket.close()
        await trio.lowlevel.checkpoint()

    async def _fill(self) -> None:
        """Feed the peer's next bytes to the TLS object.

        With ``wait_before_read``, once a ``recv`` has emptied the socket the
        next one waits for it to be readable first: a client with one request
        out (the load tool) would nearly always find the answer not there yet,
        and pay a failed system call and an exception for trying (as in
        ``sidecar.dataplane.tls_stream``). A connection carrying the replies
        of many requests at once (the host link) reads first: under load the
        next reply has usually arrived, and a wait would cost a pass through
        the scheduler for nothing.
        """
        if self._drained and self._wait_before_read:
            await self._wait_readable()
        while True:
            self._check_open()
            try:
                data = self.socket.recv(_RECEIVE_BYTES)
                break
            except BlockingIOError:
                await self._wait_readable()
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket: {exc}") from exc
        self._drained = len(data) < _RECEIVE_BYTES
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        await self._yield_now_and_then()

    async def _wait_readable(self) -> None:
        self._check_open()
        self._calls = 0
        await trio.lowlevel.wait_readable(self.socket)

    async def _flush(self) -> None:
        """Send everything the TLS object has written (see the docstring)."""
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
            raise trio.BrokenResourceError(f"socket: {exc}") from exc
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
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")


async def open_client_tls_stream(
    host: str,
    port: int,
    context: ssl.SSLContext,
    server_hostname: str,
    *,
    wait_before_read: bool = True,
) -> ClientTlsStream:
    """A TCP connection (Trio's, with TCP_NODELAY) wrapped in TLS, handshake
    done. OSError for TCP failures, BrokenResourceError for TLS ones.
    ``wait_before_read``: see ``ClientTlsStream._fill``."""
    tcp = await trio.open_tcp_stream(host, port)
    # The file descriptor leaves the Trio socket, options and all.
    sock = socket.socket(fileno=tcp.socket.detach())
    stream = ClientTlsStream(
        sock, context, server_hostname, wait_before_read=wait_before_read
    )
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream
