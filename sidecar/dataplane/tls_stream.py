"""A ``trio.abc.Stream`` that runs pyOpenSSL over a connected socket.

pyOpenSSL is used sans-IO: the ``SSL.Connection`` has memory BIOs, we write
the bytes the peer sent into it (``TlsRecords.feed``), read the bytes it
wants sent out of it (``TlsRecords.take_output``), and move them over the
non-blocking socket ourselves. Trio's own ``SSLStream`` wraps the stdlib
``ssl`` module, which cannot choose the mTLS alert (see ``tls_verify``);
hence this stream.

The stream serves one task at a time: the HTTP layer reads a request, answers
it, then reads again, so it never needs a concurrent sender and receiver.
Overlapping calls raise ``trio.BusyResourceError`` instead of corrupting the
TLS state.

Per-request cost matters (the listener aims at 1,800 requests/s on two
cores, docs/performance.md). After the handshake a request costs one
``recv``, one ``SSL_read``, one ``SSL_write`` and one ``send``, with no extra
task, lock or transport object between TLS and the socket, and the record
calls bypass pyOpenSSL's wrappers (``tls_records``). Two choices about
waiting:

* **Wait first once the socket is drained.** When TLS needs more bytes and
  the last ``recv`` emptied the socket (it returned less than a full read),
  the stream waits for the socket to become readable *before* calling
  ``recv``. A keep-alive client's next request comes well after our answer,
  so trying ``recv`` first would nearly always fail with ``EAGAIN``: a
  system call and an exception per request for nothing. When a read filled
  the whole buffer, more is likely waiting and ``recv`` comes first.
* **No scheduler trip after a socket call that did not block**, only every
  ``_YIELD_EVERY`` of them, so a client that keeps the socket full
  (pipelining, say) still cannot keep the other connections from running.
  Trio's ``SocketStream`` yields after every call; each trip costs about
  5 us of CPU on the target (a ``trio.lowlevel.checkpoint``, measured). A
  wait is a checkpoint itself, so cancellation (timeouts, shutdown) is still
  seen at every wait, and a cancelled call consumed or sent nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import trio
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from sidecar.dataplane.messages import TlsInfo
from sidecar.dataplane.tls import ServerTls
from sidecar.dataplane.tls_records import TlsRecords
from sidecar.dataplane.tls_verify import HandshakeNotes

T = TypeVar("T")

# Up to four full TLS records per socket read; chosen without measuring.
_SOCKET_READ: Final = 64 * 1024
_PLAINTEXT_READ: Final = 64 * 1024
# How long aclose() waits to hand our close_notify to the kernel.
_CLOSE_NOTIFY_TIMEOUT: Final = 1.0
# Socket calls that did not block between two yields to the scheduler.
# Chosen, not measured: a request makes two, so a connection whose socket
# never runs dry yields about once per eight requests.
_YIELD_EVERY: Final = 16


class TlsStream(trio.abc.Stream):
    """Server-side TLS over the connected socket ``sock``, which it owns;
    call ``do_handshake`` first."""

    def __init__(self, sock: socket.socket, server_tls: ServerTls) -> None:
        sock.setblocking(False)
        self.socket = sock
        self.handshake_timeout = server_tls.handshake_timeout
        self.notes = HandshakeNotes()
        self._conn = SSL.Connection(server_tls.context, None)
        self._conn.set_accept_state()
        self._conn.set_app_data(self.notes)
        self._records = TlsRecords(self._conn)
        self._busy = False
        self._usable = True  # False after a TLS or socket error, or close
        self._eof = False
        self._handshake_done = False
        self._drained = True  # the last recv left nothing in the socket
        self._calls = 0  # socket calls that did not block since the last yield

    @classmethod
    def take(cls, tcp: trio.SocketStream, server_tls: ServerTls) -> TlsStream:
        """The stream over ``tcp``'s socket, which ``tcp`` gives up (its
        ``aclose`` is then a no-op)."""
        return cls(socket.socket(fileno=tcp.socket.detach()), server_tls)

    async def do_handshake(self) -> None:
        """Run the handshake; raise ``trio.BrokenResourceError`` if it fails.

        On failure the alert OpenSSL produced has already been sent.
        """
        self._enter()
        try:
            await self._drive(self._conn.do_handshake)
        except SSL.ZeroReturnError as exc:
            # The peer closed before finishing the handshake: a load-balancer
            # TCP probe or a port scan, not an error of ours.
            raise trio.BrokenResourceError("peer closed during the handshake") from exc
        except SSL.Error as exc:
            raise self._broken(exc) from exc
        finally:
            self._busy = False
        self._handshake_done = True

    def tls_info(self) -> TlsInfo:
        """What the completed handshake negotiated, and the client identity."""
        client = self._conn.get_peer_certificate(as_cryptography=True)
        subject = client.subject if client is not None else None
        names = (
            subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if subject is not None
            else []
        )
        return TlsInfo(
            protocol=self._conn.get_protocol_version_name(),
            cipher=self._conn.get_cipher_name() or "",
            client_subject=subject.rfc4514_string() if subject is not None else None,
            client_common_name=str(names[0].value) if names else None,
        )

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._eof:
            await trio.lowlevel.checkpoint()
            return b""
        self._enter()
        records = self._records
        size = max_bytes or _PLAINTEXT_READ
        try:
            # Output a read produced (a TLS 1.3 KeyUpdate answer) stays in the
            # BIO until our next send, wait or close: it need only precede our
            # next application data (RFC 8446 section 4.6.3).
            while (data := records.read(size)) is None:
                await self._flush()
                await self._fill()
        except SSL.ZeroReturnError:  # close_notify, or TCP EOF (see tls.py)
            self._eof = True
            return b""
        except SSL.Error as exc:
            await self._flush_alert()
            raise self._broken(exc) from exc
        finally:
            self._busy = False
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        # SSL_write never needs the peer's bytes here: the context refuses
        # renegotiation (tls.py), the one case where a write must read.
        if not data:
            await trio.lowlevel.checkpoint()
            return
        self._enter()
        try:
            self._records.write(data)
            await self._flush()
        except SSL.Error as exc:
            raise self._broken(exc) from exc
        finally:
            self._busy = False

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def aclose(self) -> None:
        """Send close_notify if the session is sound, then close the socket.

        We do not wait for the peer's close_notify: RFC 8446 section 6.1 lets
        the side that closes stop there. If this task is being cancelled, the
        socket is closed at once, as Trio streams do.
        """
        try:
            if self._usable and self._handshake_done and not self._busy:
                self._usable = False
                self._conn.shutdown()
                with trio.move_on_after(_CLOSE_NOTIFY_TIMEOUT):
                    await self._flush()
        except (SSL.Error, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer is gone; closing is all that is left to do
        finally:
            self._usable = False
            self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close the socket at once (no await, so even when cancelled)."""
        if self.socket.fileno() != -1:
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    def _enter(self) -> None:
        if self._busy:
            raise trio.BusyResourceError("TlsStream serves one task at a time")
        if not self._usable:
            raise trio.ClosedResourceError("TLS stream is closed or broken")
        self._busy = True

    def _broken(self, exc: SSL.Error) -> trio.BrokenResourceError:
        self._usable = False
        return trio.BrokenResourceError(f"TLS error: {exc}")

    async def _drive(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` (the handshake) until it completes, feeding it
        the peer's bytes, then send what it wrote.

        Whatever OpenSSL wrote is always sent before we wait for the peer,
        who may be waiting for it (an alert refusing renegotiation, say).
        """
        while True:
            try:
                result = operation()
            except SSL.WantReadError:
                await self._flush()
                await self._fill()
            except SSL.ZeroReturnError:
                raise
            except SSL.Error:
                await self._flush_alert()
                raise
            else:
                await self._flush()
                return result

    # -- the socket ---------------------------------------------------------------

    async def _fill(self) -> None:
        """Feed the peer's next bytes to TLS (see the module docstring)."""
        sock = self.socket
        if self._drained:
            await self._wait(trio.lowlevel.wait_readable)
        while True:
            try:
                data = sock.recv(_SOCKET_READ)
                break
            except BlockingIOError:
                await self._wait(trio.lowlevel.wait_readable)
            except OSError as exc:
                raise self._socket_failed(exc) from exc
        self._drained = len(data) < _SOCKET_READ
        if data:
            self._records.feed(data)
        else:
            self._conn.bio_shutdown()
        await self._yield_now_and_then()

    async def _flush(self) -> None:
        """Send everything TLS has written for the peer, if anything."""
        outgoing = self._records.take_output()
        if not outgoing:
            return
        sock = self.socket
        try:
            sent = sock.send(outgoing)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise self._socket_failed(exc) from exc
        if sent < len(outgoing):
            await self._send_rest(memoryview(outgoing)[sent:])
        else:
            await self._yield_now_and_then()

    async def _send_rest(self, remaining: memoryview) -> None:
        # The socket's buffer is full: the peer reads slowly. Wait for room.
        try:
            while remaining:
                await self._wait(trio.lowlevel.wait_writable)
                try:
                    remaining = remaining[self.socket.send(remaining) :]
                except BlockingIOError:
                    continue
        except OSError as exc:
            raise self._socket_failed(exc) from exc
        except BaseException:
            # Cancelled half-way through our records: the peer may hold part
            # of one, so nothing more can be sent on this session.
            self._usable = False
            raise

    async def _wait(self, wait: Callable[[socket.socket], Awaitable[None]]) -> None:
        if self.socket.fileno() == -1:
            raise trio.ClosedResourceError("the socket is closed")
        self._calls = 0
        await wait(self.socket)

    async def _yield_now_and_then(self) -> None:
        # Shielded: the call has done its work, and cancelling it now would
        # lose the bytes it received or hide that it sent them.
        self._calls += 1
        if self._calls >= _YIELD_EVERY:
            self._calls = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    def _socket_failed(
        self, exc: OSError
    ) -> trio.BrokenResourceError | trio.ClosedResourceError:
        self._usable = False
        if self.socket.fileno() == -1:
            return trio.ClosedResourceError("the socket is closed")
        return trio.BrokenResourceError(f"socket: {exc}")

    async def _flush_alert(self) -> None:
        # A failed handshake leaves its fatal alert (handshake_failure for a
        # rejected client certificate) in the BIO; the peer must receive it.
        try:
            with trio.move_on_after(_CLOSE_NOTIFY_TIMEOUT):
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
