"""The supervisor: several worker processes serving the same ports.

One trio process serves at most one CPU; ``[server] workers = N`` runs N
worker processes (``sidecar.worker_process``), each a full sidecar with its
own event loop, backends and HSM connections, all listening on the same XKS
and ping ports with SO_REUSEPORT, so the kernel spreads new connections
among them. The process that was started (``python -m sidecar serve``)
becomes their supervisor and serves no request itself:

* **Ports.** It binds the ports first, with SO_REUSEPORT and without
  listening, and hands the bound numbers to the workers. So port 0 means
  one ephemeral port for all, a port in use fails the start before any
  worker exists, and the port stays ours while a worker restarts. A socket
  that does not listen is never given a connection.
* **Start.** Workers are started with multiprocessing's "spawn" method
  (a fresh interpreter; nothing inherited but the already validated
  configuration, so a restarted worker runs with the configuration the
  others run with, even if the file changed since). The ready file is
  written once every worker listens: ``{"ports": {...}, "workers": [pids]}``;
  rewritten when a restarted worker listens again; removed at the end.
  A worker that exits before all have started fails the start (exit 1).
* **Restarts.** A worker that dies later is started again after a pause
  that doubles with each death in quick succession (0.5 s to 30 s), logged.
* **Signals.** SIGTERM and SIGINT are passed on to every worker: the first
  makes them shut down gracefully, a second stops them at once. Workers
  still running ``shutdown_grace_s`` + 10 s after the first are killed.
* **Health.** Worker 0 runs the deep health check; the supervisor passes
  each result on to the other workers (``worker_link``), so every worker
  answers GetHealthStatus alike and the HSM sees one probe per interval.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.context import SpawnProcess
from pathlib import Path

import trio

from sidecar.config import SidecarConfig
from sidecar.serving import write_ready_file
from sidecar.worker_link import (
    LineReader,
    LinkError,
    Message,
    encode,
    health_message,
    health_nodes,
)
from sidecar.worker_process import PROBING_WORKER, WorkerSpec, worker_main
from sidecar.xks.responses import EkmNode

log = logging.getLogger("sidecar.workers")

# Restart pauses, chosen without measuring: quick enough that one crash
# costs a worker for half a second, slow enough that a crash loop (a broken
# HSM library, say) does not spin. A worker that ran this long before dying
# starts the doubling afresh.
RESTART_PAUSE_S = 0.5
RESTART_PAUSE_MAX_S = 30.0
STABLE_AFTER_S = 60.0
# Beyond shutdown_grace_s, how long a worker may take to close its HSM
# connections and exit before it is killed.
KILL_MARGIN_S = 10.0
_OUTBOX_SIZE = 16  # messages queued for one worker; only health results


def supervise(
    config: SidecarConfig, ready_file: Path | None, log_level: str | None
) -> int:
    """Run ``config.server.workers`` workers until signalled; the exit status."""
    ports = reserve_ports(config)
    try:
        fleet = _Fleet(config, ports, ready_file, log_level)
        return trio.run(fleet.run)
    finally:
        ports.close()


# -- ports ---------------------------------------------------------------------------


@dataclass
class ReservedPorts:
    """The bound, not listening, sockets holding the workers' ports."""

    xks: int
    ping: int | None
    sockets: list[socket.socket] = field(repr=False)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def reserve_ports(config: SidecarConfig) -> ReservedPorts:
    dataplane = config.server.dataplane
    sockets = [_reserve(dataplane.host, dataplane.port)]
    try:
        if dataplane.ping_port is not None:
            ping_host = dataplane.ping_host or dataplane.host
            sockets.append(_reserve(ping_host, dataplane.ping_port))
    except BaseException:
        sockets[0].close()
        raise
    ping = _port(sockets[1]) if len(sockets) > 1 else None
    return ReservedPorts(_port(sockets[0]), ping, sockets)


def _reserve(host: str, port: int) -> socket.socket:
    # The first address ``host`` resolves to, bound as the data plane binds
    # (sidecar.dataplane.sockets), so the workers' sockets join its group.
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _port(sock: socket.socket) -> int:
    port = sock.getsockname()[1]
    assert isinstance(port, int)
    return port


def worker_config(config: SidecarConfig, ports: ReservedPorts) -> SidecarConfig:
    """``config`` as a worker runs it: the reserved ports, SO_REUSEPORT on."""
    dataplane = replace(
        config.server.dataplane, port=ports.xks, ping_port=ports.ping, reuse_port=True
    )
    return replace(config, server=replace(config.server, dataplane=dataplane))


# -- the workers ------------------------------------------------------------------


@dataclass(eq=False)
class _Slot:
    """One worker position, occupied by successive processes."""

    index: int
    process: SpawnProcess | None = None
    outbox: trio.MemorySendChannel[bytes] | None = None
    ready: bool = False


class _Fleet:
    def __init__(
        self,
        config: SidecarConfig,
        ports: ReservedPorts,
        ready_file: Path | None,
        log_level: str | None,
    ) -> None:
        self._config = worker_config(config, ports)
        self._ports = ports
        self._ready_file = ready_file
        self._log_level = log_level
        self._grace = config.server.dataplane.shutdown_grace
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(config.server.workers)]
        self._all_started = False
        self._failed = False
        self._stopping = trio.Event()
        # The last health result of each backend: (nodes, age then, when).
        self._health: dict[str, tuple[tuple[EkmNode, ...], float, float]] = {}

    async def run(self) -> int:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as outer:
                outer.start_soon(self._pass_signals_on, signals, outer)
                async with trio.open_nursery() as workers:
                    for slot in self._slots:
                        workers.start_soon(self._keep_running, slot, outer)
                outer.cancel_scope.cancel()
        if self._ready_file is not None:
            self._ready_file.unlink(missing_ok=True)
        log.info("supervisor stopped")
        return 1 if self._failed else 0

    # -- stopping -----------------------------------------------------------------

    async def _pass_signals_on(
        self, signals: AsyncIterator[int], nursery: trio.Nursery
    ) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            log.info("supervisor: %s; passing it on to the workers", name)
            self._stop(nursery)

    def _stop(self, nursery: trio.Nursery) -> None:
        """Signal every worker (again, if called again: "stop at once")."""
        if not self._stopping.is_set():
            self._stopping.set()
            nursery.start_soon(self._kill_stragglers)
        for slot in self._slots:
            _signal(slot.process, signal.SIGTERM)

    async def _kill_stragglers(self) -> None:
        await trio.sleep(self._grace + KILL_MARGIN_S)
        for slot in self._slots:
            if _signal(slot.process, signal.SIGKILL):
                log.error("worker %d did not stop in time; killed it", slot.index)

    # -- one slot -----------------------------------------------------------------

    async def _keep_running(self, slot: _Slot, nursery: trio.Nursery) -> None:
        deaths = 0
        while not self._stopping.is_set():
            started = trio.current_time()
            status = await self._run_once(slot)
            if self._stopping.is_set():
                return
            if not self._all_started:
                log.error(
                    "worker %d exited with status %s while starting; stopping",
                    slot.index,
                    status,
                )
                self._failed = True
                self._stop(nursery)
                return
            lived = trio.current_time() - started
            deaths = 1 if lived >= STABLE_AFTER_S else deaths + 1
            pause = min(RESTART_PAUSE_S * 2 ** (deaths - 1), RESTART_PAUSE_MAX_S)
            log.warning(
                "worker %d exited with status %s after %.1f s; restarting in %.1f s",
                slot.index,
                status,
                lived,
                pause,
            )
            with trio.move_on_after(pause):
                await self._stopping.wait()

    async def _run_once(self, slot: _Slot) -> int | None:
        """Start a worker in ``slot``, serve its link until it exits."""
        ours, theirs = socket.socketpair()
        with ours:
            try:
                process = await self._start(slot.index, theirs)
            finally:
                theirs.close()  # the worker has its own copy now
            slot.process = process
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
            outbox, pending = trio.open_memory_channel[bytes](_OUTBOX_SIZE)
            slot.outbox = outbox
            if slot.index != PROBING_WORKER:
                self._send_known_health(outbox)
            async with trio.open_nursery() as link:
                link.start_soon(_send_forever, stream, pending)
                link.start_soon(self._receive_forever, slot, stream)
                await trio.lowlevel.wait_readable(process.sentinel)
                link.cancel_scope.cancel()
        slot.outbox, slot.ready = None, False
        process.join()
        return process.exitcode

    async def _start(self, index: int, link: socket.socket) -> SpawnProcess:
        spec = WorkerSpec(index, self._config, link, self._log_level)
        process = self._context.Process(
            target=worker_main, args=(spec,), name=f"xks-worker-{index}"
        )
        await trio.to_thread.run_sync(process.start)
        log.info("started worker %d pid=%s", index, process.pid)
        return process

    async def _receive_forever(self, slot: _Slot, stream: trio.SocketStream) -> None:
        reader = LineReader(stream)
        try:
            while (message := await reader.receive()) is not None:
                self._handle(slot, message)
        except trio.BrokenResourceError:
            pass  # the worker died abruptly
        except LinkError:
            log.exception("worker %d sent a malformed link message", slot.index)
        # The worker is exiting; its process sentinel ends the slot's run.

    def _handle(self, slot: _Slot, message: Message) -> None:
        kind = message.get("kind")
        if kind == "ready":
            slot.ready = True
            self._on_ready()
        elif kind == "health" and slot.index == PROBING_WORKER:
            backend = str(message.get("backend"))
            nodes = health_nodes(message)
            self._health[backend] = (nodes, 0.0, trio.current_time())
            for other in self._slots:
                if other.index != PROBING_WORKER and other.outbox is not None:
                    _post(other.outbox, health_message(backend, nodes, 0.0))

    def _send_known_health(self, outbox: trio.MemorySendChannel[bytes]) -> None:
        now = trio.current_time()
        for backend, (nodes, age_s, received_at) in self._health.items():
            _post(outbox, health_message(backend, nodes, age_s + now - received_at))

    def _on_ready(self) -> None:
        if not all(slot.ready for slot in self._slots):
            return
        pids = [slot.process.pid for slot in self._slots if slot.process]
        if not self._all_started:
            log.info(
                "all %d workers listening: ports xks=%s ping=%s pids=%s",
                len(self._slots),
                self._ports.xks,
                self._ports.ping,
                pids,
            )
        self._all_started = True
        if self._ready_file is not None:
            write_ready_file(self._ready_file, self.ready_document(pids))

    def ready_document(self, pids: Sequence[int | None]) -> dict[str, object]:
        ports: dict[str, int] = {"xks": self._ports.xks}
        if self._ports.ping is not None:
            ports["ping"] = self._ports.ping
        return {"ports": ports, "workers": list(pids)}


async def _send_forever(
    stream: trio.SocketStream, pending: trio.MemoryReceiveChannel[bytes]
) -> None:
    try:
        async for line in pending:
            await stream.send_all(line)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the worker is exiting; its sentinel will say so


def _post(outbox: trio.MemorySendChannel[bytes], message: Message) -> None:
    try:
        outbox.send_nowait(encode(message))
    except trio.WouldBlock:
        log.warning("a worker is not reading its link; dropped a health result")


def _signal(process: SpawnProcess | None, signum: int) -> bool:
    """Send ``signum`` to a worker still running; whether it was running."""
    if process is None or process.pid is None or process.exitcode is not None:
        return False
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        return False
    return True
