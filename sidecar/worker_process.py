"""One worker process of several: a full sidecar on the shared ports.

``worker_main`` is what the supervisor (``sidecar.workers``) starts in each
worker process. The worker runs the whole sidecar, as a single process
would, on the ports the supervisor chose (SO_REUSEPORT: the kernel spreads
incoming connections among the workers), and talks to the supervisor over
its link (``worker_link``):

* it says "ready" once it listens, for the supervisor's ready file;
* worker 0 runs the deep health check and publishes each result; every
  other worker adopts the results the supervisor passes on, so all answer
  GetHealthStatus alike and the HSM sees one probe per interval;
* EOF on the link means the supervisor is gone: shut down gracefully.

The worker leaves the terminal's process group first, so Ctrl-C reaches the
supervisor alone, which passes it on once; otherwise each worker would get
it twice (from the terminal and from the supervisor), and a second signal
means "stop at once".
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import trio

from sidecar.app import RunningSidecar
from sidecar.config import SidecarConfig
from sidecar.health import HealthMonitor
from sidecar.serving import (
    configure_logging,
    report_startup_problems,
    serve_until_signalled,
    startup_problems,
)
from sidecar.worker_link import (
    LineReader,
    LinkError,
    Message,
    encode,
    health_message,
    health_nodes,
    ready_message,
)
from sidecar.xks.responses import EkmNode

log = logging.getLogger("sidecar.worker")

# The worker that runs the deep health check (see the module docstring).
PROBING_WORKER = 0
# Messages waiting to go to the supervisor; health results are the only
# steady traffic (one per backend per interval), so this is never reached
# unless the supervisor stopped reading, and then dropping is right.
_OUTBOX_SIZE = 64


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process is started with (pickled by multiprocessing)."""

    index: int
    config: SidecarConfig  # ports set to the supervisor's, reuse_port on
    link: socket.socket = field(repr=False)
    log_level: str | None = None


def worker_main(spec: WorkerSpec) -> None:
    """Entry point of a worker process; exits 1 on a start-up problem."""
    os.setpgid(0, 0)
    configure_logging(spec.config.logging, spec.log_level, worker=spec.index)
    try:
        trio.run(_serve_worker, spec)
    except BaseException as exc:
        problems = startup_problems(exc)
        if problems is None:
            log.critical("worker %d failed", spec.index, exc_info=True)
            sys.exit(1)
        sys.exit(report_startup_problems(problems))


async def _serve_worker(spec: WorkerSpec) -> None:
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(spec.link))
    async with stream, trio.open_nursery() as nursery:
        link = WorkerLink(spec.index, stream, nursery.cancel_scope)
        nursery.start_soon(link.send_forever)
        nursery.start_soon(link.receive_forever)
        await serve_until_signalled(
            spec.config, link.announce, health_share=link, worker=spec.index
        )
        nursery.cancel_scope.cancel()


class WorkerLink:
    """The worker's end of the link; also its ``HealthShare`` (``app``)."""

    def __init__(
        self, index: int, stream: trio.SocketStream, everything: trio.CancelScope
    ) -> None:
        self.index = index
        self._stream = stream
        self._everything = everything
        self._outbox, self._pending = trio.open_memory_channel[bytes](_OUTBOX_SIZE)
        self._running: RunningSidecar | None = None
        self._monitors: Mapping[str, HealthMonitor] = {}
        # Results that came before the monitors existed, by backend.
        self._early: dict[str, tuple[tuple[EkmNode, ...], float, float]] = {}

    @property
    def probes(self) -> bool:
        return self.index == PROBING_WORKER

    def publish(self, backend: str, nodes: Sequence[EkmNode]) -> None:
        self._post(health_message(backend, nodes, 0.0))

    def attach(self, monitors: Mapping[str, HealthMonitor]) -> None:
        self._monitors = monitors
        now = trio.current_time()
        for backend, (nodes, age_s, received_at) in self._early.items():
            self._adopt(backend, nodes, age_s + now - received_at)
        self._early.clear()

    async def announce(self, running: RunningSidecar) -> None:
        """Tell the supervisor we listen (``serve_until_signalled``'s on_ready)."""
        self._running = running
        ports = running.ready_document()["ports"]
        assert isinstance(ports, dict)
        await self._outbox.send(encode(ready_message(ports)))

    async def send_forever(self) -> None:
        try:
            async for line in self._pending:
                await self._stream.send_all(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the supervisor is gone; receive_forever reads EOF and acts

    async def receive_forever(self) -> None:
        reader = LineReader(self._stream)
        try:
            while (message := await reader.receive()) is not None:
                self._handle(message)
        except trio.BrokenResourceError:
            pass  # the supervisor died abruptly
        except LinkError:
            log.exception("the supervisor sent a malformed link message")
        self._supervisor_gone()

    def _handle(self, message: Message) -> None:
        if message.get("kind") != "health":
            return  # nothing else is sent to workers today
        backend = str(message.get("backend"))
        age = message.get("age_s")
        age_s = float(age) if isinstance(age, int | float) else 0.0
        nodes = health_nodes(message)
        if backend in self._monitors:
            self._adopt(backend, nodes, age_s)
        else:
            self._early[backend] = (nodes, age_s, trio.current_time())

    def _adopt(self, backend: str, nodes: Sequence[EkmNode], age_s: float) -> None:
        monitor = self._monitors.get(backend)
        if monitor is not None:
            monitor.adopt(nodes, age_s)

    def _post(self, message: Message) -> None:
        try:
            self._outbox.send_nowait(encode(message))
        except trio.WouldBlock:
            log.warning("supervisor not reading; dropped a health result")

    def _supervisor_gone(self) -> None:
        log.warning("worker %d: supervisor gone; shutting down", self.index)
        if self._running is not None:
            self._running.request_shutdown()
        else:
            self._everything.cancel()
