"""Measure the data plane's TLS record calls: pyOpenSSL's wrappers or direct.

    .venv/bin/python -m tests.bench.tls_records_bench [--rounds N]

A pyOpenSSL server connection and a stdlib client are joined by memory BIOs
(no sockets, no event loop). Each round is one request's worth of record
work on the server side as ``sidecar.dataplane.tls_stream`` does it: feed a
1,200-byte request record, read it, a read that finds nothing (WantRead),
write a 300-byte response, take the output. Printed: CPU microseconds per
round of the server side, through pyOpenSSL's ``Connection`` methods and
through ``TlsRecords``. The client's share is measured alone and subtracted.

Not a pytest test: figures depend on the machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from OpenSSL import SSL

from fixtures.pki import mint
from sidecar.dataplane.tls_records import TlsRecords
from tests.dataplane.test_tls_records import _Pair

_REQUEST = b"q" * 1200
_RESPONSE = b"r" * 300


def _wrapped(pair: _Pair) -> Callable[[bytes], bytes]:
    conn = pair.server

    def serve(record: bytes) -> bytes:
        conn.bio_write(record)
        conn.recv(65536)
        with contextlib.suppress(SSL.WantReadError):
            conn.recv(65536)
        conn.sendall(_RESPONSE)
        return conn.bio_read(65536)

    return serve


def _direct(pair: _Pair) -> Callable[[bytes], bytes]:
    records = TlsRecords(pair.server)

    def serve(record: bytes) -> bytes:
        records.feed(record)
        records.read(65536)
        records.read(65536)  # None: nothing more
        records.write(_RESPONSE)
        return records.take_output()

    return serve


def _round_trips(pair: _Pair, serve: Callable[[bytes], bytes] | None, n: int) -> float:
    client, outgoing, incoming = pair.client, pair.outgoing, pair.incoming
    reply = pair.records.take_output()
    started = time.process_time()
    for _ in range(n):
        client.write(_REQUEST)
        record = outgoing.read()
        if serve is None:  # the client's share alone
            continue
        incoming.write(serve(record))
        client.read(65536)
    del reply
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50000)
    n = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as folder:
        pki = mint(Path(folder))
        client_only = min(_round_trips(_Pair(pki), None, n) for _ in range(3))
        for name, make in (("pyOpenSSL", _wrapped), ("TlsRecords", _direct)):
            figures = []
            for _ in range(3):
                pair = _Pair(pki)
                figures.append(_round_trips(pair, make(pair), n))
            print(f"{name:11} {min(figures) - client_only:6.1f} us/request (server)")


if __name__ == "__main__":
    main()
