"""The deep health probe: one NodeStatus per node, ACTIVE, DEGRADED or
UNAVAILABLE, with the node's identity when it answered."""

from __future__ import annotations

import trio

from sidecar.backends.base import NodeState
from simulator.keystore import KeyState, KeyStore
from simulator.seed import HEALTH_KEY_LABEL
from tests.backends.conftest import (
    MODEL,
    VERSION,
    BackendFactory,
    Cluster,
    SimNode,
    closed_port,
)


async def test_healthy_nodes_are_active_with_identity(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    first, second = await cluster.start(), await cluster.start()
    backend = make_backend(first, second)

    statuses = await backend.probe(HEALTH_KEY_LABEL)

    assert [s.name for s in statuses] == [first.node_id, second.node_id]
    for status, node in zip(statuses, (first, second), strict=True):
        assert status.state is NodeState.ACTIVE
        assert (status.node_id, status.model, status.version) == (
            node.node_id,
            MODEL,
            VERSION,
        )
        assert status.detail == ""
        assert 0 < status.latency_s < 1
    assert first.count("GCEN") == first.count("GCDE") == 1
    assert second.count("GCDE") == 1


async def test_every_node_is_probed_even_one_marked_down(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    first, second = await cluster.start(), await cluster.start()
    first.faults.refuse_connections = True
    backend = make_backend(first, second, node_backoff_s=60.0, node_backoff_max_s=60.0)
    await backend.encrypt("foo", b"x", b"")  # marks the first node down
    first.faults.clear()

    statuses = await backend.probe(HEALTH_KEY_LABEL)

    assert [s.state for s in statuses] == [NodeState.ACTIVE] * 2
    await backend.encrypt("foo", b"x", b"")  # the probe marked it up again
    assert first.count("GCEN") == 2


async def test_nothing_listening_is_unavailable(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, closed_port())

    good, dead = await backend.probe(HEALTH_KEY_LABEL)

    assert good.state is NodeState.ACTIVE
    assert dead.state is NodeState.UNAVAILABLE
    assert (dead.node_id, dead.model, dead.version) == (None, None, None)
    assert "connect failed" in dead.detail


async def test_node_that_never_answers_is_unavailable_after_the_timeout(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, health_timeout_s=0.2)
    sim.faults.drop_rate = 1.0

    started = trio.current_time()
    (status,) = await backend.probe(HEALTH_KEY_LABEL)

    assert status.state is NodeState.UNAVAILABLE
    assert 0.2 <= trio.current_time() - started < 0.4
    assert 0.2 <= status.latency_s < 0.4


async def test_failing_crypto_check_is_degraded_with_identity(
    sim: SimNode, make_backend: BackendFactory, store: KeyStore
) -> None:
    store.set_state(HEALTH_KEY_LABEL, KeyState.DISABLED)
    backend = make_backend(sim)

    (status,) = await backend.probe(HEALTH_KEY_LABEL)

    assert status.state is NodeState.DEGRADED
    assert status.model == MODEL
    assert "KEY_DISABLED" in status.detail


async def test_missing_health_key_is_degraded(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    (status,) = await make_backend(sim).probe("no-such-health-key")

    assert status.state is NodeState.DEGRADED
    assert "KEY_NOT_FOUND" in status.detail


async def test_slow_node_is_degraded(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, health_slow_s=0.05)
    sim.faults.latency_ms = 30  # three round trips: about 90 ms

    (status,) = await backend.probe(HEALTH_KEY_LABEL)

    assert status.state is NodeState.DEGRADED
    assert status.detail.startswith("slow")
    assert status.version == VERSION


async def test_node_answering_errors_only_is_degraded(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    sim.faults.error_rate = 1.0

    (status,) = await make_backend(sim).probe(HEALTH_KEY_LABEL)

    assert status.state is NodeState.DEGRADED
    assert status.model is None
