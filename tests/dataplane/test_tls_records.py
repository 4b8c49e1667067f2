"""TlsRecords: the direct record-layer calls behave as pyOpenSSL's own."""

from __future__ import annotations

import contextlib
import socket
import ssl

import pytest
from OpenSSL import SSL

from fixtures.pki import Pki
from sidecar.dataplane.tls_records import TlsRecords


class _Pair:
    """A pyOpenSSL server and a stdlib client, joined by memory BIOs."""

    def __init__(self, pki: Pki) -> None:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate_chain_file(str(pki.sidecar_server_chain))
        context.use_privatekey_file(str(pki.sidecar_server_key))
        self.server = SSL.Connection(context, None)
        self.server.set_accept_state()
        self.records = TlsRecords(self.server)
        client_context = ssl.create_default_context(cafile=str(pki.public_root_cert))
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = client_context.wrap_bio(
            self.incoming, self.outgoing, server_hostname="localhost"
        )
        self._handshake()

    def _handshake(self) -> None:
        for _ in range(10):
            try:
                self.client.do_handshake()
                if self.server.get_peer_finished() is not None:
                    return
            except ssl.SSLWantReadError:
                pass
            self.records.feed(self.outgoing.read())
            with contextlib.suppress(SSL.WantReadError):
                self.server.do_handshake()
            self.incoming.write(self.records.take_output())
        raise AssertionError("handshake did not finish")

    def client_sends(self, data: bytes) -> None:
        self.client.write(data)
        self.records.feed(self.outgoing.read())

    def client_receives(self, size: int) -> bytes:
        self.incoming.write(self.records.take_output())
        received = b""
        while len(received) < size:
            received += self.client.read(65536)
        return received


@pytest.fixture
def pair(pki: Pki) -> _Pair:
    return _Pair(pki)


def test_reads_what_the_client_sent_across_several_records(pair: _Pair) -> None:
    body = bytes(range(256)) * 160  # 40 KiB: three TLS records

    pair.client_sends(body)
    received = b""
    while (chunk := pair.records.read(65536)) is not None:
        received += chunk

    assert received == body


def test_read_with_nothing_buffered_answers_none(pair: _Pair) -> None:
    assert pair.records.read(65536) is None
    pair.client_sends(b"late")
    assert pair.records.read(65536) == b"late"


def test_read_honours_max_bytes(pair: _Pair) -> None:
    pair.client_sends(b"abcdef")

    assert pair.records.read(4) == b"abcd"
    assert pair.records.read(4) == b"ef"


def test_write_of_several_records_reaches_the_client_whole(pair: _Pair) -> None:
    body = b"xks" * 20000  # 60,000 bytes: partial writes per record

    pair.records.write(memoryview(body))

    assert pair.client_receives(len(body)) == body


def test_take_output_is_empty_when_nothing_was_written(pair: _Pair) -> None:
    assert pair.records.take_output() == b""


def test_close_notify_from_the_client_raises_zero_return(pair: _Pair) -> None:
    with pytest.raises(ssl.SSLWantReadError):
        pair.client.unwrap()  # sends close_notify, then wants ours
    pair.records.feed(pair.outgoing.read())

    with pytest.raises(SSL.ZeroReturnError):
        pair.records.read(65536)


def test_corrupt_record_raises_ssl_error(pair: _Pair) -> None:
    pair.client.write(b"hello")
    record = bytearray(pair.outgoing.read())
    record[-1] ^= 0xFF  # break the record's authentication tag
    pair.records.feed(bytes(record))

    with pytest.raises(SSL.Error) as raised:
        pair.records.read(65536)
    assert not isinstance(raised.value, SSL.WantReadError)


def test_refuses_a_connection_without_memory_bios(pki: Pki) -> None:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    left, right = socket.socketpair()
    with left, right, pytest.raises(ValueError, match="memory BIOs"):
        TlsRecords(SSL.Connection(context, left))
