"""Overload is not an outage: a sidecar that falls behind keeps its node.

When this process is too busy to read the node's replies before their
deadlines, the requests time out (DependencyTimeoutException), but the node
did answer and must not be marked down: with one node, that would turn a
short overload into seconds of InternalException for every request.

The node runs in a thread of its own (its own Trio run), so that it goes on
answering while the test stalls this thread, the way a real CryptoHub goes on
answering an overloaded sidecar.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import trio

from sidecar.backends.cryptohub import CryptoHubBackend
from sidecar.xks.errors import DependencyTimeoutException
from simulator import config as sim_config
from simulator.crypto import HsmCrypto
from simulator.faults import Faults
from simulator.hostproto.handlers import HandlerContext
from simulator.server import serve_host_protocol
from simulator.stats import Stats
from tests.backends.conftest import BackendFactory, Cluster

AAD = b"aad"
DEADLINE_S = 0.05
STALL_S = 0.12  # longer than the deadline; the replies arrive meanwhile
START_TIMEOUT_S = 10.0


@dataclass
class ThreadNode:
    port: int
    faults: Faults
    stats: Stats


@contextmanager
def node_in_a_thread(cluster: Cluster) -> Iterator[ThreadNode]:
    """A simulator node on its own Trio run, in a thread, until the block ends."""
    node = ThreadNode(0, Faults(), Stats())
    identity = sim_config.NodeSettings("sim-thread", "TestHub", "1", "SN1")
    ctx = HandlerContext(cluster.store, HsmCrypto(cluster.store), identity)
    settings = sim_config.HostSettings(
        listen="127.0.0.1",
        port=0,
        cert=cluster.pki.simulator_server_chain,
        key=cluster.pki.simulator_server_key,
        client_ca=cluster.pki.sim_ca_cert,
    )
    started: queue.Queue[tuple[int, trio.lowlevel.TrioToken, trio.CancelScope]]
    started = queue.Queue()

    async def serve() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    serve_host_protocol, settings, ctx, node.faults, node.stats
                )
                started.put((port, trio.lowlevel.current_trio_token(), scope))

    thread = threading.Thread(target=trio.run, args=(serve,))
    thread.start()
    node.port, token, scope = started.get(timeout=START_TIMEOUT_S)
    try:
        yield node
    finally:
        token.run_sync_soon(scope.cancel)  # thread-safe, and does not block
        thread.join(START_TIMEOUT_S)


async def _encrypt_once(backend: CryptoHubBackend) -> None:
    # Answered or timed out, depending on whether this process looks at the
    # reply or at the deadline first after the stall; either is right.
    with suppress(DependencyTimeoutException):
        await backend.encrypt("foo", b"x", AAD)


async def test_replies_left_unread_by_a_stalled_process_keep_the_node_up(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    with node_in_a_thread(cluster) as node:
        backend = make_backend(node.port, request_timeout_s=DEADLINE_S)
        await backend.encrypt("foo", b"warm-up", AAD)
        node.faults.latency_ms = 20  # the replies come during the stall

        for _ in range(5):
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(_encrypt_once, backend)
                await trio.sleep(0.005)  # the requests are on the wire
                # This thread stalls and reads nothing: the point of the test.
                time.sleep(STALL_S)  # noqa: ASYNC251

        node.faults.latency_ms = 0
        sealed = await backend.encrypt("foo", b"after", AAD)  # not marked down
        assert await backend.decrypt("foo", *sealed, AAD) == b"after"
        opened = node.stats.snapshot()["connections_total"]
        assert isinstance(opened, int)
        assert opened <= 2  # the pool's two: none abandoned for silence
