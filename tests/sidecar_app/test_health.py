"""The health monitor: background probes, a cache, and answers from it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from sidecar.backends.base import NodeState, NodeStatus
from sidecar.config import HealthSettings
from sidecar.health import HealthMonitor

SETTINGS = HealthSettings(interval_s=5, max_age_s=60, fleet_size=2)
NODES = ["hub-1", "hub-2"]


def status(name: str, state: NodeState = NodeState.ACTIVE) -> NodeStatus:
    answered = state is not NodeState.UNAVAILABLE
    return NodeStatus(
        name=name,
        state=state,
        node_id=f"id-{name}" if answered else None,
        model="CryptoHub" if answered else None,
        version="7.1" if answered else None,
        latency_s=0.01,
        detail="" if state is NodeState.ACTIVE else "something is off",
    )


@dataclass
class FakeProber:
    """Answers each probe with the next planned result (the last repeats)."""

    plan: list[list[NodeStatus] | Exception]
    key_ids: list[str] = field(default_factory=list)

    async def probe(self, health_key_id: str) -> list[NodeStatus]:
        self.key_ids.append(health_key_id)
        result = self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]
        if isinstance(result, Exception):
            raise result
        return result


def monitor(*plan: list[NodeStatus] | Exception) -> HealthMonitor:
    return HealthMonitor("hub", FakeProber(list(plan)), NODES, SETTINGS)


def states(monitor: HealthMonitor) -> list[str]:
    return [node.health_status for node in monitor.report().ekm_fleet_details]


async def test_started_only_once_the_first_result_is_cached() -> None:
    prober = FakeProber([[status("hub-1"), status("hub-2", NodeState.DEGRADED)]])
    health = HealthMonitor("hub", prober, NODES, SETTINGS)

    async with trio.open_nursery() as nursery:
        await nursery.start(health.run)
        report = health.report()
        nursery.cancel_scope.cancel()

    assert prober.key_ids == ["xks-health-check"]
    assert [(n.id, n.model, n.health_status) for n in report.ekm_fleet_details] == [
        ("hub-1", "CryptoHub 7.1", "ACTIVE"),
        ("hub-2", "CryptoHub 7.1", "DEGRADED"),
    ]


async def test_nothing_cached_yet_reports_every_node_unavailable() -> None:
    assert states(monitor([status("hub-1"), status("hub-2")])) == [
        "UNAVAILABLE",
        "UNAVAILABLE",
    ]


async def test_result_older_than_max_age_reports_every_node_unavailable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    health = monitor([status("hub-1"), status("hub-2")])
    await health.check_now()

    await trio.sleep(SETTINGS.max_age_s - 1)
    fresh = states(health)
    await trio.sleep(2)

    assert fresh == ["ACTIVE", "ACTIVE"]
    assert states(health) == ["UNAVAILABLE", "UNAVAILABLE"]


async def test_stale_report_keeps_the_models_last_seen(
    autojump_clock: trio.testing.MockClock,
) -> None:
    health = monitor([status("hub-1"), status("hub-2")])
    await health.check_now()
    await trio.sleep(SETTINGS.max_age_s + 1)

    assert [n.model for n in health.report().ekm_fleet_details] == ["CryptoHub 7.1"] * 2


async def test_probe_that_raises_makes_every_node_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = monitor(RuntimeError("probe bug"))

    await health.check_now()

    assert states(health) == ["UNAVAILABLE", "UNAVAILABLE"]
    (logged,) = [r for r in caplog.records if r.exc_info is not None]
    assert "health probe of backend hub failed" in logged.getMessage()


async def test_a_node_the_probe_did_not_report_is_unavailable() -> None:
    health = monitor([status("hub-1")])

    await health.check_now()

    assert states(health) == ["ACTIVE", "UNAVAILABLE"]


async def test_probe_hanging_past_max_age_counts_as_a_failed_probe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Hanging:
        async def probe(self, health_key_id: str) -> list[NodeStatus]:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

    health = HealthMonitor("hub", Hanging(), NODES, SETTINGS)

    await health.check_now()

    assert states(health) == ["UNAVAILABLE", "UNAVAILABLE"]


async def test_the_monitor_probes_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    prober = FakeProber([[status("hub-1"), status("hub-2")]])
    health = HealthMonitor("hub", prober, NODES, SETTINGS)

    async with trio.open_nursery() as nursery:
        await nursery.start(health.run)
        await trio.sleep(SETTINGS.interval_s * 3 + 0.5)
        nursery.cancel_scope.cancel()

    assert len(prober.key_ids) == 4


async def test_state_changes_are_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.health")
    down = [status("hub-1", NodeState.UNAVAILABLE), status("hub-2")]
    health = monitor([status("hub-1"), status("hub-2")], down, down, down)

    for _ in range(4):
        await health.check_now()

    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "HSM node hub-1 of backend hub is UNAVAILABLE (was ACTIVE): something is off"
    ]


async def test_response_has_exactly_the_spec_field_names() -> None:
    health = monitor([status("hub-1"), status("hub-2")])
    await health.check_now()

    document = json.loads(health.report().to_json())

    assert document == {
        "xksProxyFleetSize": 2,
        "xksProxyVendor": "Futurex",
        "xksProxyModel": "CryptoHub",
        "ekmVendor": "Futurex",
        "ekmFleetDetails": [
            {"id": "hub-1", "model": "CryptoHub 7.1", "healthStatus": "ACTIVE"},
            {"id": "hub-2", "model": "CryptoHub 7.1", "healthStatus": "ACTIVE"},
        ],
    }
