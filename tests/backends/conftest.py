"""Fixtures for the CryptoHub backend's tests: real simulator nodes over mTLS.

``cluster.start()`` runs one host-protocol server (port 0, mutual TLS, the
development PKI) in the test's nursery; every node started in a test shares
one fresh seeded key store, as nodes of one CryptoHub cluster share keys.
Each node keeps its own ``Faults`` and ``Stats``, so a test can break or count
one node alone. ``make_backend(*nodes, **settings)`` builds a backend on
those nodes, closed when the test ends.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import pytest
import trio

from fixtures.pki import Pki
from sidecar.backends.cryptohub import (
    CryptoHubBackend,
    CryptoHubSettings,
    NodeSettings,
)
from simulator import config as sim_config
from simulator.crypto import HsmCrypto
from simulator.faults import Faults
from simulator.hostproto.handlers import HandlerContext
from simulator.keystore import KeyStore
from simulator.seed import seed
from simulator.server import serve_host_protocol
from simulator.stats import Stats

MODEL = "TestHub"
VERSION = "9.8.7"


@dataclass
class SimNode:
    """One running simulator node, and what it shares with the test."""

    node_id: str
    port: int
    faults: Faults
    stats: Stats

    def count(self, command: str) -> int:
        """How many ``command`` requests this node has answered (or dropped)."""
        commands = self.stats.snapshot()["commands"]
        assert isinstance(commands, dict)
        entry = commands.get(command)
        return int(entry["count"]) if entry else 0

    def connections_total(self) -> int:
        total = self.stats.snapshot()["connections_total"]
        assert isinstance(total, int)
        return total

    def connections_open(self) -> int:
        opened = self.stats.snapshot()["connections_open"]
        assert isinstance(opened, int)
        return opened


@dataclass
class Cluster:
    nursery: trio.Nursery
    pki: Pki
    store: KeyStore
    started: list[SimNode] = field(default_factory=list)

    async def start(self, **host_overrides: Any) -> SimNode:
        node_id = f"sim-{len(self.started) + 1}"
        identity = sim_config.NodeSettings(
            node_id=node_id, model=MODEL, version=VERSION, serial="SN1"
        )
        host = replace(_host_settings(self.pki), **host_overrides)
        faults, stats = Faults(), Stats()
        ctx = HandlerContext(self.store, HsmCrypto(self.store), identity)
        port = await self.nursery.start(serve_host_protocol, host, ctx, faults, stats)
        node = SimNode(node_id, port, faults, stats)
        self.started.append(node)
        return node

    def node_settings(self, node: SimNode | int, **overrides: Any) -> NodeSettings:
        """Settings reaching ``node`` (or a bare port) as the sidecar would."""
        port = node if isinstance(node, int) else node.port
        name = f"port-{port}" if isinstance(node, int) else node.node_id
        settings = NodeSettings(
            name=name,
            host="127.0.0.1",
            port=port,
            server_ca=self.pki.sim_ca_cert,
            client_cert=self.pki.sidecar_hsm_client_cert,
            client_key=self.pki.sidecar_hsm_client_key,
            server_name="localhost",
        )
        return replace(settings, **overrides)


def _host_settings(pki: Pki) -> sim_config.HostSettings:
    return sim_config.HostSettings(
        listen="127.0.0.1",
        port=0,
        cert=pki.simulator_server_chain,
        key=pki.simulator_server_key,
        client_ca=pki.sim_ca_cert,
        max_in_flight=64,
        idle_timeout_s=30.0,
        handshake_timeout_s=5.0,
    )


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail the test after ``timeout_s``."""
    with trio.fail_after(timeout_s):
        while True:
            if condition():
                return
            await trio.sleep(0.01)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    """A fresh store with the seed keys (foo, encrypt_only_key, ...)."""
    with KeyStore.open(tmp_path / "keys.db", os.urandom(32)) as opened:
        seed(opened)
        yield opened


@pytest.fixture
def cluster(nursery: trio.Nursery, pki: Pki, store: KeyStore) -> Cluster:
    return Cluster(nursery, pki, store)


@pytest.fixture
async def sim(cluster: Cluster) -> SimNode:
    """One simulator node with the test host settings."""
    return await cluster.start()


class BackendFactory(Protocol):
    def __call__(
        self, *nodes: SimNode | NodeSettings | int, **settings: Any
    ) -> CryptoHubBackend: ...


@pytest.fixture
async def make_backend(
    nursery: trio.Nursery, cluster: Cluster
) -> AsyncIterator[BackendFactory]:
    """Build backends on simulator nodes, node settings or bare ports."""
    made: list[CryptoHubBackend] = []

    def build(
        *nodes: SimNode | NodeSettings | int, **settings: Any
    ) -> CryptoHubBackend:
        node_settings = tuple(
            node if isinstance(node, NodeSettings) else cluster.node_settings(node)
            for node in nodes
        )
        backend = CryptoHubBackend(
            CryptoHubSettings(nodes=node_settings, **settings), nursery
        )
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()
