"""The TLS record calls of a pyOpenSSL connection, straight to libssl.

After the handshake, each request on a data-plane connection costs four
record-layer calls: ``bio_write`` (the peer's bytes in), ``recv``
(``SSL_read``), ``sendall`` (``SSL_write``) and ``bio_read`` (our bytes out).
pyOpenSSL wraps each in Python that allocates a fresh buffer, checks its
arguments and, on ``recv``, asks three callback helpers for a stored error
even when the call succeeded. Measured on the 2-core target
(tests/bench/tls_records_bench.py): those four calls plus a failed ``recv``
cost about 31 us a request through pyOpenSSL and about 9 us when made
directly, against one shared buffer.

Only the success paths are made directly. When a call returns an error,
pyOpenSSL's own ``_raise_ssl_error`` turns it into the usual exception
(``WantReadError``, ``ZeroReturnError``, ``SSL.Error``...), so the stream
above sees exactly what pyOpenSSL would raise. The handshake, with its
verify callback, stays on pyOpenSSL's public calls.

Like ``tls_verify``, this reaches into pyOpenSSL's private handles
(``Connection._ssl``, ``_into_ssl``, ``_from_ssl``, ``_raise_ssl_error``
and ``OpenSSL._util``); ``__init__`` checks that they exist, and
tests/dataplane/test_tls_records.py must be re-run on a pyOpenSSL upgrade.

One buffer serves every connection of the process: each call copies its
result out before returning, and the data plane calls these from one thread.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

from OpenSSL import SSL
from OpenSSL._util import ffi, lib

_BUFFER_BYTES: Final = 64 * 1024  # at least one TLS record (16 KiB + overhead)
_buffer: Any = None  # allocated on first use, shared (see the docstring)


def _shared_buffer() -> Any:
    global _buffer
    if _buffer is None:
        _buffer = ffi.new("char[]", _BUFFER_BYTES)
    return _buffer


class TlsRecords:
    """Record-layer calls on ``conn``, a memory-BIO ``SSL.Connection``."""

    __slots__ = ("_conn", "_from", "_into", "_ssl")

    def __init__(self, conn: SSL.Connection) -> None:
        self._conn = conn
        self._ssl: Any = conn._ssl
        self._into: Any = conn._into_ssl
        self._from: Any = conn._from_ssl
        if self._into is None or self._from is None:
            raise ValueError("TlsRecords needs a connection with memory BIOs")
        if not callable(getattr(conn, "_raise_ssl_error", None)):
            raise TypeError("this pyOpenSSL has no Connection._raise_ssl_error")

    def feed(self, data: bytes) -> None:
        """Hand the peer's bytes to TLS (``Connection.bio_write``)."""
        written = lib.BIO_write(self._into, data, len(data))
        if written != len(data):  # a memory BIO takes all or fails
            self._conn.bio_write(data)  # raises pyOpenSSL's error

    def read(self, max_bytes: int) -> bytes | None:
        """Decrypted application data (``Connection.recv``), or None when TLS
        needs more of the peer's bytes first.

        None instead of ``WantReadError``: every request ends with one such
        read (the next request has not arrived), and raising it through
        pyOpenSSL costs more than the read itself.
        """
        buffer = _shared_buffer()
        result = lib.SSL_read(self._ssl, buffer, min(max_bytes, _BUFFER_BYTES))
        if result > 0:
            return ffi.buffer(buffer, result)[:]  # type: ignore[no-any-return]
        if lib.SSL_get_error(self._ssl, result) == lib.SSL_ERROR_WANT_READ:
            return None
        self._raise(result)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt all of ``data`` into records (``Connection.sendall``).

        pyOpenSSL enables partial writes on its contexts, so ``SSL_write``
        stops after each record: loop, as ``sendall`` does. A memory BIO
        grows as needed, so there is never a WantWrite to wait for.
        """
        with ffi.from_buffer(data) as view:
            done, total = 0, len(view)
            while done < total:
                result = lib.SSL_write(self._ssl, view + done, total - done)
                if result <= 0:
                    self._raise(result)
                done += result

    def take_output(self) -> bytes:
        """Everything TLS has written for the peer (``bio_read`` until empty)."""
        buffer = _shared_buffer()
        chunks: list[bytes] = []
        while True:
            result = lib.BIO_read(self._from, buffer, _BUFFER_BYTES)
            if result <= 0:  # empty: a memory BIO signals "retry", no error
                break
            chunks.append(ffi.buffer(buffer, result)[:])
            if result < _BUFFER_BYTES:  # a memory BIO hands over all it holds
                break
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def _raise(self, result: int) -> NoReturn:
        self._conn._raise_ssl_error(self._ssl, result)
        # SSL_ERROR_NONE with no data: nothing pyOpenSSL would raise for.
        raise SSL.Error(f"TLS call failed without an error code ({result})")
