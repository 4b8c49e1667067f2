"""Fixtures for the simulator's tests: a live host-protocol server and a client.

``simulator`` starts the real server (mutual TLS, port 0) in the test's
nursery, over a fresh seeded key store in ``tmp_path``; ``simulator.connect()``
opens a client with the sidecar's HSM client certificate, or any other
certificate a test wants refused. Clients are closed when the test ends.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import trio

from fixtures.pki import Pki
from simulator.config import HostSettings, NodeSettings
from simulator.crypto import HsmCrypto
from simulator.faults import Faults
from simulator.hostproto.codec import (
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
)
from simulator.hostproto.handlers import HandlerContext
from simulator.keystore import KeyStore
from simulator.seed import seed
from simulator.server import serve_host_protocol
from simulator.stats import Stats

TEST_NODE = NodeSettings(
    node_id="test-node-7", model="TestHub", version="9.8.7", serial="SN424242"
)
# How long a test waits for a reply that should come; generous for a slow CI.
REPLY_TIMEOUT_S = 5.0


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds; fail the test after REPLY_TIMEOUT_S.

    For server-side effects (counters, logs) that land a moment after the
    client has seen the connection end.
    """
    with trio.fail_after(REPLY_TIMEOUT_S):
        while True:
            if condition():
                return
            await trio.sleep(0.01)


class HostClient:
    """A test client of the host protocol over one TLS connection."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self._decoder = FrameDecoder(1 << 20)

    async def send(self, *frames: Frame) -> None:
        """Send ``frames`` in one write, so the server sees them pipelined."""
        await self.send_raw(b"".join(encode_frame(frame) for frame in frames))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self) -> Frame:
        """The next reply; fails the test if none comes within REPLY_TIMEOUT_S."""
        with trio.fail_after(REPLY_TIMEOUT_S):
            while True:
                event = self._decoder.next_event()
                if isinstance(event, Frame):
                    return event
                assert not isinstance(event, FrameError), event
                assert event is NEED_DATA
                data = await self.stream.receive_some(65536)
                if not data:
                    raise EOFError("server closed the connection")
                self._decoder.receive_data(data)

    async def request(self, frame: Frame) -> Frame:
        await self.send(frame)
        return await self.receive()

    async def closed_by_server(self) -> bool:
        """True if the server ends the connection (EOF or reset) without
        sending another byte within REPLY_TIMEOUT_S; False on data or timeout."""
        with trio.move_on_after(REPLY_TIMEOUT_S):
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return True
            return data == b""
        return False

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


def client_tls_context(pki: Pki, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.sim_ca_cert)
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    return context


@dataclass
class RunningSimulator:
    """A host-protocol server started for one test, and what it serves."""

    port: int
    pki: Pki
    store: KeyStore
    faults: Faults
    stats: Stats
    clients: list[HostClient] = field(default_factory=list)

    async def connect(
        self,
        cert: Path | None = None,
        key: Path | None = None,
        *,
        anonymous: bool = False,
    ) -> HostClient:
        """A client with the HSM client certificate (or ``cert``/``key``, or
        none at all when ``anonymous``), its TLS handshake done."""
        if not anonymous and cert is None:
            cert, key = (
                self.pki.sidecar_hsm_client_cert,
                self.pki.sidecar_hsm_client_key,
            )
        tcp = await trio.open_tcp_stream("127.0.0.1", self.port)
        context = client_tls_context(self.pki, cert, key)
        stream = trio.SSLStream(tcp, context, server_hostname="localhost")
        client = HostClient(stream)
        self.clients.append(client)
        with trio.fail_after(REPLY_TIMEOUT_S):
            await stream.do_handshake()
        return client

    async def connect_tcp(self) -> trio.SocketStream:
        """A bare TCP connection, no TLS; closed by the caller."""
        return await trio.open_tcp_stream("127.0.0.1", self.port)

    async def aclose_clients(self) -> None:
        for client in self.clients:
            await client.aclose()


def host_settings(pki: Pki) -> HostSettings:
    return HostSettings(
        listen="127.0.0.1",
        port=0,
        cert=pki.simulator_server_chain,
        key=pki.simulator_server_key,
        client_ca=pki.sim_ca_cert,
        max_frame_bytes=4096,
        max_in_flight=64,
        idle_timeout_s=30.0,
        handshake_timeout_s=5.0,
    )


@pytest.fixture
def sim_store(tmp_path: Path) -> Iterator[KeyStore]:
    """A fresh store with the seed keys."""
    with KeyStore.open(tmp_path / "keys.db", os.urandom(32)) as store:
        seed(store)
        yield store


@dataclass
class SimulatorFactory:
    """Starts servers in the test's nursery; ``start(**host_overrides)``."""

    nursery: trio.Nursery
    pki: Pki
    store: KeyStore
    started: list[RunningSimulator] = field(default_factory=list)

    async def start(self, **overrides: Any) -> RunningSimulator:
        settings = replace(host_settings(self.pki), **overrides)
        faults, stats = Faults(), Stats()
        ctx = HandlerContext(self.store, HsmCrypto(self.store), TEST_NODE)
        port = await self.nursery.start(
            serve_host_protocol, settings, ctx, faults, stats
        )
        running = RunningSimulator(port, self.pki, self.store, faults, stats)
        self.started.append(running)
        return running


@pytest.fixture
async def simulators(
    nursery: trio.Nursery, pki: Pki, sim_store: KeyStore
) -> AsyncIterator[SimulatorFactory]:
    """A factory for servers with non-default host settings."""
    factory = SimulatorFactory(nursery, pki, sim_store)
    yield factory
    for running in factory.started:
        await running.aclose_clients()


@pytest.fixture
async def simulator(simulators: SimulatorFactory) -> RunningSimulator:
    """A server with the test host settings (4 KiB frames, 64 in flight)."""
    return await simulators.start()
