"""``run_sidecar`` in process: graceful shutdown finishes what is in flight."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import pytest
import trio

from sidecar.app import RunningSidecar, run_sidecar
from sidecar.backends.base import GcmResult, NodeState, NodeStatus
from sidecar.config import load_config
from tests.sidecar_app.conftest import ConfigFile, FakeKeyManager, sign

PATH = "/dev/kms/xks/v1/keys/foo/encrypt"


@dataclass
class SlowBackend(FakeKeyManager):
    """Encrypt waits until released, so a test can hold a request in flight."""

    entered: trio.Event = field(default_factory=trio.Event)
    release: trio.Event = field(default_factory=trio.Event)
    closed: bool = False

    async def encrypt(self, key_id: str, plaintext: bytes, hsm_aad: bytes) -> GcmResult:
        self.entered.set()
        await self.release.wait()
        return await super().encrypt(key_id, plaintext, hsm_aad)

    async def probe(self, health_key_id: str) -> list[NodeStatus]:
        return [NodeStatus("hub-1", NodeState.ACTIVE, "n", "m", "1", 0.0, "")]


def plaintext_config(config_file: ConfigFile) -> str:
    """The base configuration, listening on plain HTTP (development only)."""
    text = config_file.text
    tls = text[text.index("[server.tls]") : text.index("[[keystore]]")]
    return text.replace(tls, "").replace(
        "port = 0\n", "port = 0\nallow_plaintext_for_development = true\n", 1
    )


def encrypt_request() -> bytes:
    metadata = {
        "kmsRequestId": "in-flight",
        "kmsOperation": "Encrypt",
        "awsPrincipalArn": "arn:aws:iam::111122223333:user/a",
        "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/k",
    }
    body = json.dumps(
        {
            "requestMetadata": metadata,
            "plaintext": base64.b64encode(b"x").decode(),
            "encryptionAlgorithm": "AES_GCM",
        }
    ).encode()
    headers = [*sign(PATH, body), (b"content-length", str(len(body)).encode())]
    client = h11.Connection(h11.CLIENT)
    return client.send(h11.Request(method="POST", target=PATH, headers=headers)) + body


async def status_of(port: int, raw: bytes) -> int:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target=PATH, headers=[("host", "x")]))
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(raw)
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                return event.status_code
            client.receive_data(bytes(await stream.receive_some(65536)))


async def test_shutdown_finishes_the_request_in_flight_then_closes_backends(
    config_file: ConfigFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = SlowBackend()
    backend.add("foo")

    @asynccontextmanager
    async def open_fake(kind: str, settings: object) -> AsyncIterator[SlowBackend]:
        yield backend
        backend.closed = True

    monkeypatch.setattr("sidecar.app.open_backend", open_fake)
    config = load_config(config_file.write(plaintext_config(config_file)), {})
    statuses: list[int] = []

    async with trio.open_nursery() as nursery:
        running: RunningSidecar = await nursery.start(run_sidecar, config)
        port = running.ports[0]

        async def call() -> None:
            statuses.append(await status_of(port, encrypt_request()))

        nursery.start_soon(call)
        await backend.entered.wait()
        running.request_shutdown()
        await trio.sleep(0.1)
        with pytest.raises(OSError, match=r"refused|connect"):
            await trio.open_tcp_stream("127.0.0.1", port)
        assert not backend.closed
        backend.release.set()

    assert statuses == [200]
    assert backend.closed
