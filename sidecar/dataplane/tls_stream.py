"""A ``trio.abc.Stream`` that runs pyOpenSSL over any Trio transport stream.

pyOpenSSL is used sans-IO: the ``SSL.Connection`` has memory BIOs, we write
the bytes the peer sent into it (``bio_write``), read the bytes it wants sent
out of it (``bio_read``), and move them over the transport ourselves. Trio's
own ``SSLStream`` wraps the stdlib ``ssl`` module, which cannot choose the
mTLS alert (see ``tls_verify``); hence this adapter.

The stream serves one task at a time: the HTTP layer reads a request, answers
it, then reads again, so it never needs a concurrent sender and receiver.
Overlapping calls raise ``trio.BusyResourceError`` instead of corrupting the
TLS state. Per-call overhead matters (the listener aims at 1,800 requests/s on
two cores): a request costs one transport read, one ``SSL_read``, one
``SSL_write`` and one transport write, with no extra task or lock, and the
record-layer calls bypass pyOpenSSL's wrappers (``tls_records``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from sidecar.dataplane.messages import TlsInfo
from sidecar.dataplane.tls import ServerTls
from sidecar.dataplane.tls_records import TlsRecords
from sidecar.dataplane.tls_verify import HandshakeNotes

T = TypeVar("T")

# Up to four full TLS records per transport read; chosen without measuring.
_TRANSPORT_READ = 64 * 1024
_PLAINTEXT_READ = 64 * 1024
# How long aclose() waits to hand our close_notify to the kernel.
_CLOSE_NOTIFY_TIMEOUT = 1.0


class TlsStream(trio.abc.Stream):
    """Server-side TLS over ``transport``; call ``do_handshake`` first."""

    def __init__(self, transport: trio.abc.Stream, server_tls: ServerTls) -> None:
        self.transport = transport
        self.notes = HandshakeNotes()
        self._conn = SSL.Connection(server_tls.context, None)
        self._conn.set_accept_state()
        self._conn.set_app_data(self.notes)
        self._records = TlsRecords(self._conn)
        self._busy = False
        self._usable = True  # False after a TLS error or close
        self._eof = False
        self._handshake_done = False

    async def do_handshake(self) -> None:
        """Run the handshake; raise ``trio.BrokenResourceError`` if it fails.

        On failure the alert OpenSSL produced has already been sent.
        """
        try:
            await self._guarded(lambda: self._drive(self._conn.do_handshake))
        except SSL.ZeroReturnError as exc:
            # The peer closed before finishing the handshake: a load-balancer
            # TCP probe or a port scan, not an error of ours.
            raise trio.BrokenResourceError("peer closed during the handshake") from exc
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
            return b""
        size = max_bytes or _PLAINTEXT_READ
        try:
            return await self._guarded(lambda: self._read(size))
        except SSL.ZeroReturnError:  # close_notify, or TCP EOF (see tls.py)
            self._eof = True
            return b""

    async def _read(self, size: int) -> bytes:
        # ``_drive`` for reads, without an exception per request: every
        # request ends with a read that finds nothing (``TlsRecords.read``).
        # Output of a read that completed stays in the BIO until the next
        # send, wait or close: a TLS 1.3 KeyUpdate answer need only precede
        # our next application data (RFC 8446 section 4.6.3).
        while True:
            try:
                data = self._records.read(size)
            except (SSL.ZeroReturnError, SSL.WantReadError):
                raise
            except SSL.Error:
                await self._flush_alert()
                raise
            if data is not None:
                return data
            await self._flush()
            await self._fill()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            await self._guarded(lambda: self._drive(lambda: self._records.write(data)))

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Send close_notify if the session is sound, then close the transport.

        We do not wait for the peer's close_notify: RFC 8446 section 6.1 lets
        the side that closes stop there. If this task is being cancelled, the
        transport is closed at once, as Trio streams do.
        """
        if not self._usable:
            await self.transport.aclose()
            return
        self._usable = False
        try:
            if self._handshake_done and not self._busy:
                self._conn.shutdown()
                with trio.move_on_after(_CLOSE_NOTIFY_TIMEOUT):
                    await self._flush()
        except (SSL.Error, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer is gone; closing is all that is left to do
        finally:
            await self.transport.aclose()

    async def _guarded(self, run: Callable[[], Awaitable[T]]) -> T:
        """``await run()`` with the stream marked busy; TLS errors become
        ``trio.BrokenResourceError`` (but ZeroReturnError, the peer's close)."""
        if self._busy:
            raise trio.BusyResourceError("TlsStream serves one task at a time")
        if not self._usable:
            raise trio.ClosedResourceError("TLS stream is closed or broken")
        self._busy = True
        try:
            return await run()
        except SSL.ZeroReturnError:
            raise
        except SSL.Error as exc:
            self._usable = False
            raise trio.BrokenResourceError(f"TLS error: {exc}") from exc
        finally:
            self._busy = False

    async def _drive(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` (handshake, write) until it completes, feeding it
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

    async def _fill(self) -> None:
        # A cancelled receive_some consumed nothing (Trio's guarantee), so
        # cancelling a wait for the peer leaves the TLS state sound.
        try:
            data = await self.transport.receive_some(_TRANSPORT_READ)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._usable = False
            raise
        if data:
            self._records.feed(bytes(data))
        else:
            self._conn.bio_shutdown()

    async def _flush(self) -> None:
        outgoing = self._pending_output()
        if not outgoing:
            return
        try:
            await self.transport.send_all(outgoing)
        except BaseException:
            # Cancelled or broken half-way through our records: the peer may
            # hold part of one, so nothing more can be sent on this session.
            self._usable = False
            raise

    def _pending_output(self) -> bytes:
        return self._records.take_output()

    async def _flush_alert(self) -> None:
        # A failed handshake leaves its fatal alert (handshake_failure for a
        # rejected client certificate) in the BIO; the peer must receive it.
        try:
            with trio.move_on_after(_CLOSE_NOTIFY_TIMEOUT):
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
