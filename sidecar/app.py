"""The whole sidecar in one Trio task: backends, health checks, data plane.

``run_sidecar`` opens every configured backend, starts one health monitor per
backend (its first deep check done before anything listens, so the first
GetHealthStatus already has a result), builds the request handler with its
overload protection (``throttle``) and serves the data plane, all in one
nursery. As one of several worker processes (``sidecar.workers``) it is
given a ``HealthShare``: the worker that probes publishes each result
through it, the others follow the results it delivers.

Shutdown (``RunningSidecar.request_shutdown``, which the CLI calls on SIGTERM
or SIGINT) goes in dependency order: the data plane stops accepting and lets
requests in flight finish (``[server] shutdown_grace_s``); then the health
monitors stop; then the backends close their HSM connections. Cancelling
``run_sidecar`` instead stops everything at once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Protocol

import trio

from sidecar.backends import Backend, open_backend
from sidecar.config import KeystoreSettings, SidecarConfig
from sidecar.dataplane import (
    DataplaneConfig,
    RunningDataplane,
    serve_dataplane,
)
from sidecar.handler import Keystore, XksHandler
from sidecar.health import HealthMonitor
from sidecar.throttle import Quota, Throttle
from sidecar.xks.responses import EkmNode
from sidecar.xks.sigv4 import SigV4Verifier

log = logging.getLogger("sidecar")


class HealthShare(Protocol):
    """How a worker process shares the deep health check with its siblings."""

    @property
    def probes(self) -> bool:
        """Whether this process runs the deep check (else it follows)."""
        ...

    def publish(self, backend: str, nodes: Sequence[EkmNode]) -> None:
        """Pass one fresh result of ``backend``'s probe on to the others."""
        ...

    def attach(self, monitors: Mapping[str, HealthMonitor]) -> None:
        """From now on, deliver results from the others to these monitors."""
        ...


@dataclass(eq=False)
class RunningSidecar:
    """What ``run_sidecar`` reports once it listens."""

    ports: tuple[int, ...]  # the XKS data plane, one per listening address
    ping_ports: tuple[int, ...]  # the plain-HTTP /ping listener, if configured
    monitors: Mapping[str, HealthMonitor] = field(repr=False)
    _dataplane: RunningDataplane = field(repr=False)

    def request_shutdown(self) -> None:
        """Stop accepting, finish requests in flight, then close everything."""
        self._dataplane.request_shutdown()

    def ready_document(self) -> dict[str, object]:
        """The ``--ready-file`` content: where the sidecar listens."""
        ports: dict[str, int] = {"xks": self.ports[0]}
        if self.ping_ports:
            ports["ping"] = self.ping_ports[0]
        return {"ports": ports}


async def run_sidecar(
    config: SidecarConfig,
    *,
    health_share: HealthShare | None = None,
    task_status: trio.TaskStatus[RunningSidecar] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until shut down; ``task_status.started`` gets the bound ports."""
    _warn_about(config)
    async with AsyncExitStack() as backends_open:
        backends: dict[str, Backend] = {}
        for name, backend in config.backends.items():
            opened = open_backend(backend.kind, backend.settings)
            backends[name] = await backends_open.enter_async_context(opened)
        async with trio.open_nursery() as nursery:
            monitors = await _start_monitors(config, backends, nursery, health_share)
            handler = XksHandler(
                (
                    _keystore(k, backends[k.backend], monitors[k.backend])
                    for k in config.keystores
                ),
                throttle=_throttle(config),
            )
            dataplane: RunningDataplane = await nursery.start(
                _serve_then_stop, config.server.dataplane, handler, nursery.cancel_scope
            )
            running = RunningSidecar(
                dataplane.ports, dataplane.ping_ports, monitors, dataplane
            )
            log.info(
                "sidecar serving keystores=%s ports=%s ping_ports=%s",
                [k.name for k in config.keystores],
                list(running.ports),
                list(running.ping_ports),
            )
            task_status.started(running)
    log.info("sidecar stopped")


async def _start_monitors(
    config: SidecarConfig,
    backends: Mapping[str, Backend],
    nursery: trio.Nursery,
    share: HealthShare | None,
) -> dict[str, HealthMonitor]:
    probes = share is None or share.probes
    monitors = {}
    for name, backend in backends.items():
        nodes = config.backends[name].node_names
        publish = functools.partial(share.publish, name) if share and probes else None
        monitors[name] = HealthMonitor(
            name, backend, nodes, config.health, on_result=publish
        )
    if share is not None:
        share.attach(monitors)
    for monitor in monitors.values():
        await nursery.start(monitor.run if probes else monitor.follow)
    return monitors


def _throttle(config: SidecarConfig) -> Throttle:
    """This process's limiter; each worker gets its share of the quotas."""
    quotas: dict[str, Quota] = {
        k.name: k.quota for k in config.keystores if k.quota is not None
    }
    return Throttle(
        max_in_flight=config.server.max_in_flight,
        quotas=quotas,
        workers=config.server.workers,
        now=time.monotonic(),
    )


async def _serve_then_stop(
    config: DataplaneConfig,
    handler: XksHandler,
    others: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[RunningDataplane],
) -> None:
    # When the data plane has drained, nothing needs the health monitors.
    await serve_dataplane(config, handler, task_status=task_status)
    others.cancel()


def _keystore(
    settings: KeystoreSettings, backend: Backend, monitor: HealthMonitor
) -> Keystore:
    return Keystore(
        name=settings.name,
        uri_path=settings.uri_path,
        verifier=SigV4Verifier(settings.credentials, region=settings.region),
        policy=settings.policy,
        backend=backend,
        health=monitor.get_health_status,
    )


def _warn_about(config: SidecarConfig) -> None:
    for keystore in config.keystores:
        for warning in keystore.kms_format_warnings:
            log.warning("KMS would refuse this credential: %s", warning)
    dataplane = config.server.dataplane
    if dataplane.tls is None:
        log.warning("serving plain HTTP: for development only, never for KMS")
    elif dataplane.tls.mutual_tls is None:
        log.warning("mutual TLS is off: any client with a SigV4 secret gets in")
