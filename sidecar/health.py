"""The background deep health check, and GetHealthStatus answered from it.

Spec, GetHealthStatus: the check SHOULD be deep (the HSM can do
cryptography, not merely answer), and since KMS gives up after 250 ms, a
proxy whose deep check takes longer MAY run it in the background and answer
from a cached result, which "MUST not be older than one minute".

So one ``HealthMonitor`` per backend runs the backend's ``probe`` every
``interval_s`` (a test encryption and decryption under the health key on
each node) and keeps the result with the time it was taken. GetHealthStatus
never waits for a probe: it answers at once from the cache,

* with each node's graded state (ACTIVE, DEGRADED, UNAVAILABLE) while the
  result is at most ``max_age_s`` old;
* with every configured node UNAVAILABLE when there is no result yet or it
  is older than that: a result we cannot vouch for is not reported as
  health. That happens only if the checker itself is stuck, since each probe
  is bounded and a failed probe is itself a fresh result (UNAVAILABLE).

The answer is HTTP 200 either way: the spec's response carries per-node
states precisely so that "unavailable" can be reported, and KMS reads them.

The response object is built once per probe, not per request, so the
request path does nothing but a clock read and a comparison.

With several worker processes (``sidecar.workers``) one of them probes and
the others *follow*: ``on_result`` hands each fresh result to the worker's
link to the supervisor, which passes it to the other workers' monitors
(``adopt``), with its age. So the HSM sees one probe per interval whatever
the number of workers, and every worker answers GetHealthStatus alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from sidecar.backends.base import NodeState, NodeStatus
from sidecar.config import HealthSettings
from sidecar.xks.responses import EkmNode, HealthStatusResponse

log = logging.getLogger("sidecar.health")

# The model reported for a node never yet reached (NODE tells us its model).
UNKNOWN_MODEL = "unknown"


class Prober(Protocol):
    """What the monitor needs of a backend: a deep check of every node."""

    async def probe(self, health_key_id: str) -> list[NodeStatus]: ...


@dataclass(frozen=True, slots=True)
class _Result:
    taken_at: float  # trio.current_time() when the probe finished
    response: HealthStatusResponse


class HealthMonitor:
    """Probes one backend's nodes in the background; answers from the cache."""

    def __init__(
        self,
        backend: str,
        prober: Prober,
        node_names: Sequence[str],
        settings: HealthSettings,
        *,
        on_result: Callable[[Sequence[EkmNode]], None] | None = None,
    ) -> None:
        self.backend = backend
        self._on_result = on_result  # told each probe's result (the prober)
        self._adopted = trio.Event()  # a follower has its first result
        self._prober = prober
        self._settings = settings
        self._models = {name: UNKNOWN_MODEL for name in node_names}
        self._states: dict[str, NodeState] = {}
        self._result: _Result | None = None

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Probe forever; ``started`` once the first result is in the cache."""
        await self.check_now()
        task_status.started()
        while True:
            await trio.sleep(self._settings.interval_s)
            await self.check_now()

    async def follow(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Probe nothing; ``started`` once a first result was ``adopt``-ed.

        Waits at most ``max_age_s`` for it (the prober's own bound on its
        first probe); without it GetHealthStatus reports every node
        UNAVAILABLE, as for any result we cannot vouch for.
        """
        with trio.move_on_after(self._settings.max_age_s):
            await self._adopted.wait()
        task_status.started()
        await trio.sleep_forever()

    def adopt(self, nodes: Sequence[EkmNode], age_s: float) -> None:
        """Take a result another process probed ``age_s`` seconds ago."""
        known = [node for node in nodes if node.id in self._models]
        for node in known:
            self._models[node.id] = node.model
        if known:
            taken_at = trio.current_time() - max(0.0, age_s)
            self._result = _Result(taken_at, self._response(known))
        self._adopted.set()

    async def check_now(self) -> None:
        """Run one probe and cache its result (a failed probe counts too)."""
        statuses: list[NodeStatus] | None = None
        with trio.move_on_after(self._settings.max_age_s):
            try:
                statuses = await self._prober.probe(self._settings.key_id)
            except Exception:
                # The probe is meant never to raise; if it does, the nodes
                # are not known to work, which is what UNAVAILABLE says.
                log.exception("health probe of backend %s failed", self.backend)
        self._record(statuses or [])

    def report(self) -> HealthStatusResponse:
        """The GetHealthStatus answer: cached, or all UNAVAILABLE if stale."""
        result = self._result
        if result is None or trio.current_time() - result.taken_at > self._max_age:
            return self._unavailable()
        return result.response

    async def get_health_status(self) -> HealthStatusResponse:
        """``report`` in the shape ``sidecar.xks.service`` awaits."""
        return self.report()

    @property
    def _max_age(self) -> float:
        return self._settings.max_age_s

    def _record(self, statuses: list[NodeStatus]) -> None:
        by_name = {status.name: status for status in statuses}
        nodes = []
        for name in self._models:
            status = by_name.get(name)
            state = status.state if status else NodeState.UNAVAILABLE
            if status is not None and status.model:
                self._models[name] = _model(status)
            self._log_change(name, state, status.detail if status else "no result")
            nodes.append(EkmNode(name, self._models[name], state.value))
        self._result = _Result(trio.current_time(), self._response(nodes))
        if self._on_result is not None:
            self._on_result(tuple(nodes))

    def _log_change(self, name: str, state: NodeState, detail: str) -> None:
        before = self._states.get(name)
        self._states[name] = state
        if state == before or (before is None and state is NodeState.ACTIVE):
            return
        level = logging.INFO if state is NodeState.ACTIVE else logging.WARNING
        log.log(
            level,
            "HSM node %s of backend %s is %s (was %s)%s",
            name,
            self.backend,
            state.value,
            before.value if before else "unknown",
            f": {detail}" if detail else "",
        )

    def _unavailable(self) -> HealthStatusResponse:
        unavailable = NodeState.UNAVAILABLE.value
        nodes = [
            EkmNode(name, model, unavailable) for name, model in self._models.items()
        ]
        return self._response(nodes)

    def _response(self, nodes: list[EkmNode]) -> HealthStatusResponse:
        settings = self._settings
        return HealthStatusResponse(
            xks_proxy_fleet_size=settings.fleet_size,
            xks_proxy_vendor=settings.vendor,
            xks_proxy_model=settings.model,
            ekm_vendor=settings.ekm_vendor,
            ekm_fleet_details=tuple(nodes),
        )


def _model(status: NodeStatus) -> str:
    # Spec: the model "SHOULD include the product name, version of the
    # hardware and any other information useful in troubleshooting".
    return f"{status.model} {status.version}" if status.version else str(status.model)
