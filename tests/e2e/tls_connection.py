"""The TLS connection to the sidecar's data plane, as KMS opens it.

KMS presents its client certificate (mTLS) and keeps one connection alive
for many requests; ``XksConnection`` does the same. ``TlsOptions`` lets a
test pin the version or the TLS 1.2 suites, or present another certificate.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from tests.e2e.http_wire import ConnectionClosed, Reply, ReplyParser
from tests.e2e.stack import Stack


@dataclass(frozen=True)
class TlsOptions:
    """How the client connects: its certificate, pinned version, TLS 1.2 suites.

    The stdlib cannot restrict TLS 1.3 suites; ``s_client`` covers those.
    """

    cert: Path | None
    key: Path | None
    version: ssl.TLSVersion | None = None
    ciphers: str | None = None


def kms_tls(stack: Stack, **changes: Any) -> TlsOptions:
    """KMS's client certificate (CN cks.kms.us-east-1.amazonaws.com)."""
    pki = stack.pki
    return replace(TlsOptions(pki.kms_client_chain, pki.kms_client_key), **changes)


def client_context(stack: Stack, options: TlsOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(stack.pki.public_root_cert))
    if options.cert is not None:
        context.load_cert_chain(str(options.cert), str(options.key))
    if options.version is not None:
        context.minimum_version = context.maximum_version = options.version
    if options.ciphers is not None:
        context.set_ciphers(options.ciphers)
    return context


class XksConnection:
    """One TLS connection carrying any number of requests (keep-alive)."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self._replies = ReplyParser()

    @classmethod
    async def open(cls, stack: Stack, options: TlsOptions) -> XksConnection:
        tcp = await trio.open_tcp_stream(stack.host, stack.port)
        stream = trio.SSLStream(
            tcp, client_context(stack, options), server_hostname=stack.server_name
        )
        with trio.fail_after(5):
            await stream.do_handshake()
        return cls(stream)

    @property
    def tls_version(self) -> str | None:
        version = self.stream.version()
        return str(version) if version else None

    @property
    def cipher(self) -> str | None:
        described = self.stream.cipher()
        return described[0] if described else None

    async def exchange(self, raw: bytes) -> Reply:
        """Send one raw request and read its reply (at most 10 s)."""
        wanted = len(self._replies.replies) + 1
        await self.stream.send_all(raw)
        with trio.fail_after(10):
            while len(self._replies.replies) < wanted:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise ConnectionClosed(f"after {raw[:60]!r}")
                self._replies.parser.feed_data(data)
        return self._replies.replies[wanted - 1]

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)
