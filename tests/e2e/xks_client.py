"""Test-side XKS client for the end-to-end conformance suite.

Everything the suite sends reaches the running sidecar the way KMS would:
HTTPS with a client certificate (``tls_connection``), SigV4 from botocore
(``signing``), bodies from ``bodies``, formatted as raw bytes
(``http_wire``). Nothing reaches into a process: the suite must run
unchanged against every backend.

One ``XksClient`` keeps one keep-alive connection (as KMS does) and reopens
it only if the server closed it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trio

from tests.e2e.bodies import (
    Json,
    decrypt_body,
    encrypt_body,
    health_body,
    metadata_body,
    to_json,
)
from tests.e2e.http_wire import JSON, ConnectionClosed, Headers, Reply, format_request
from tests.e2e.signing import Signer, signer_for
from tests.e2e.stack import KeystoreInfo, Stack
from tests.e2e.tls_connection import TlsOptions, XksConnection, kms_tls

HeaderEdit = Callable[[Headers], Headers]


@dataclass
class XksClient:
    """Signed XKS calls to one keystore over one kept-alive connection."""

    stack: Stack
    keystore: KeystoreInfo
    signer: Signer
    tls: TlsOptions
    connection: XksConnection | None = None
    # Every Authorization value sent, so the log test can look for them.
    authorizations: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"{self.stack.server_name}:{self.stack.port}"

    def path(self, operation: str, key_id: str | None = None) -> str:
        if key_id is None:
            return f"{self.keystore.uri_path}/{operation}"
        return f"{self.keystore.uri_path}/keys/{key_id}/{operation}"

    async def send(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        signer: Signer | None = None,
        unsigned: bool = False,
        sign_path: str | None = None,
        sign_body: bytes | None = None,
        when: datetime | None = None,
        edit: HeaderEdit | None = None,
    ) -> Reply:
        """Send one request; the ``sign_*``, ``when`` and ``edit`` knobs tamper."""
        headers: Headers = [("Host", self.host)]
        if not unsigned:
            headers = (signer or self.signer).sign(
                method,
                self.host,
                sign_path or path,
                body if sign_body is None else sign_body,
                when=when,
            )
            self.authorizations.append(headers[-1][1])
        headers.append(("Content-Type", JSON))
        return await self.send_raw(
            format_request(method, path, (edit or _same)(headers), body)
        )

    async def send_raw(self, raw: bytes) -> Reply:
        """Send bytes as they are; reconnects once if the server had closed."""
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = await XksConnection.open(self.stack, self.tls)
            try:
                return await self.connection.exchange(raw)
            except (ConnectionClosed, trio.BrokenResourceError):
                await self.aclose()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def post(self, path: str, doc: Mapping[str, Any], **knobs: Any) -> Reply:
        return await self.send("POST", path, to_json(doc), **knobs)

    async def health(self, doc: Json | None = None) -> Reply:
        return await self.post(self.path("health"), doc or health_body())

    async def metadata(self, key_id: str, doc: Json | None = None) -> Reply:
        return await self.post(self.path("metadata", key_id), doc or metadata_body())

    async def encrypt(self, key_id: str, plaintext: bytes, **options: Any) -> Reply:
        doc = encrypt_body(plaintext, **options)
        return await self.post(self.path("encrypt", key_id), doc)

    async def decrypt(self, key_id: str, encrypted: Json, **options: Any) -> Reply:
        doc = decrypt_body(encrypted, **options)
        return await self.post(self.path("decrypt", key_id), doc)

    async def aclose(self) -> None:
        if self.connection is not None:
            await self.connection.aclose()
            self.connection = None


def _same(headers: Headers) -> Headers:
    return headers


@asynccontextmanager
async def open_client(
    stack: Stack,
    keystore: str = "dev",
    *,
    credential: int = 0,
    tls: TlsOptions | None = None,
) -> AsyncIterator[XksClient]:
    info = stack.keystores[keystore]
    client = XksClient(stack, info, signer_for(info, credential), tls or kms_tls(stack))
    try:
        yield client
    finally:
        await client.aclose()
