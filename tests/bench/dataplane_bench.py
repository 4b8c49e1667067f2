"""Measure the data plane on its full path: TLS, HTTP parsing, handler, reply.

    .venv/bin/python -m tests.bench.dataplane_bench [--requests N]

For each parser library (and a bare Trio ``SSLStream`` echo as a baseline),
a server runs in this process and a client process sends N XKS-sized
requests one after another on one keep-alive TLS 1.3 connection. Printed per
request: the client's round-trip time, and the server process's CPU time,
which bounds what one core can serve (1e6 / CPU us = requests/s per core).

Not a pytest test (the name does not start with ``test_``): timing depends on
the machine, so the figures go to docs/dataplane.md, not into assertions.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httptools
import trio

from fixtures.pki import Pki, mint
from sidecar.dataplane import (
    DataplaneConfig,
    HttpRequest,
    HttpResponse,
    ParserName,
    TlsSettings,
    json_response,
    serve_dataplane,
)

_WARMUP = 200
# An Encrypt-sized request: about 1 KiB of JSON and a SigV4-like header set.
_BODY = json.dumps(
    {
        "requestMetadata": {
            "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
            "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/" + "1" * 36,
            "kmsOperation": "Encrypt",
            "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
            "kmsViaService": "ebs",
        },
        "plaintext": "A" * 600,
        "encryptionAlgorithm": "AES_GCM",
    }
).encode()
_REQUEST = (
    b"POST /kms/xks/v1/keys/foo/encrypt HTTP/1.1\r\n"
    b"Host: xks.example.test\r\n"
    b"Content-Type: application/json\r\n"
    b"X-Amz-Date: 20260101T000000Z\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms-xks-"
    b"proxy/aws4_request, SignedHeaders=host;x-amz-date, Signature="
    + b"0"
    * 64
    + b"\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
_REPLY = json_response(
    200,
    {
        "authenticationTag": "vBxN2ncH1oEkR8WVXpmyYQ==",
        "ciphertext": "ghxkK1txeDNn3q8Y" * 40,
        "initializationVector": "HMXm2A8h0CD/w4Tq",
    },
)


async def _reply(request: HttpRequest) -> HttpResponse:
    return _REPLY


# -- client (a separate process: it must not share the server's core) -------


def run_client(port: int, cafile: str, requests: int) -> None:
    context = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = _Replies()
        for _ in range(_WARMUP):
            _round_trip(tls, replies)
        start = time.perf_counter()
        for _ in range(requests):
            _round_trip(tls, replies)
        elapsed = time.perf_counter() - start
    print(json.dumps({"us_per_request": elapsed / requests * 1e6}))


class _Replies:
    """Counts complete responses (httptools' response parser)."""

    def __init__(self) -> None:
        self.count = 0
        self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        self.count += 1


def _round_trip(tls: ssl.SSLSocket, replies: _Replies) -> None:
    expected = replies.count + 1
    tls.sendall(_REQUEST)
    while replies.count < expected:
        replies.parser.feed_data(tls.recv(65536))


# -- servers -----------------------------------------------------------------


async def _measure(serve: object, pki: Pki, requests: int) -> dict[str, float]:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve)  # type: ignore[arg-type]
        cpu_before = time.process_time()
        client = await trio.run_process(
            [
                sys.executable,
                "-m",
                "tests.bench.dataplane_bench",
                "--client",
                str(port),
                str(pki.public_root_cert),
                str(requests),
            ],
            capture_stdout=True,
        )
        cpu = time.process_time() - cpu_before
        nursery.cancel_scope.cancel()
    result: dict[str, float] = json.loads(client.stdout)
    result["server_cpu_us_per_request"] = cpu / (requests + _WARMUP) * 1e6
    return result


def _dataplane(pki: Pki, parser: ParserName) -> object:
    config = DataplaneConfig(
        port=0,
        tls=TlsSettings(pki.sidecar_server_chain, pki.sidecar_server_key),
        parser=parser,
    )

    async def serve(task_status: trio.TaskStatus[int]) -> None:
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve_dataplane, config, _reply)
            task_status.started(running.ports[0])

    return serve


def _bare_trio_echo(pki: Pki) -> object:
    """Trio's stdlib-ssl SSLStream, no HTTP parsing: the floor to compare with."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.sidecar_server_chain, pki.sidecar_server_key)
    reply = (
        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(_REPLY.body)
        + _REPLY.body
    )

    async def echo(stream: trio.SSLStream[trio.SocketStream]) -> None:
        while await stream.receive_some(65536):
            await stream.send_all(reply)

    async def serve(task_status: trio.TaskStatus[int]) -> None:
        listeners = await trio.open_ssl_over_tcp_listeners(
            0, context, host="127.0.0.1", https_compatible=True
        )
        transport = listeners[0].transport_listener
        assert isinstance(transport, trio.SocketListener)
        port = transport.socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, echo, listeners)
            task_status.started(port)

    return serve


async def _main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        pki = mint(Path(folder))
        runs = {parser.value: _dataplane(pki, parser) for parser in ParserName}
        runs["bare trio SSLStream echo (no HTTP)"] = _bare_trio_echo(pki)
        for name, serve in runs.items():
            result = await _measure(serve, pki, requests)
            print(
                f"{name:38s} round trip {result['us_per_request']:7.1f} us/request"
                f"   server CPU {result['server_cpu_us_per_request']:6.1f} us/request"
            )


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--requests", type=int, default=5000)
    arguments.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    options = arguments.parse_args()
    if options.client:
        port, cafile, requests = options.client
        run_client(int(port), cafile, int(requests))
    else:
        trio.run(_main, options.requests)


if __name__ == "__main__":
    main()
