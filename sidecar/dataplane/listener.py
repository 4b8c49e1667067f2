"""``serve_dataplane``: accept connections, secure them, serve HTTP on them.

Structure (Trio nurseries, outermost first):

    serve_dataplane
    └── reaper nursery              the task enforcing connection timeouts
        └── connections nursery     one task per accepted connection
            └── acceptors nursery   one accept loop per listening socket
                                     (the XKS port, and the ping port if set)

Graceful shutdown (``RunningDataplane.request_shutdown``): the accept loops
stop and the sockets close, so no new connection is taken; idle keep-alive
connections close at once; a request in flight is answered with
``Connection: close``. Whatever is still running after ``shutdown_grace``
seconds is cancelled. Cancelling ``serve_dataplane`` itself stops everything
at once, as Trio cancellation does.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field

import trio

from sidecar.dataplane.codec import ServerCodec
from sidecar.dataplane.codec_h11 import H11Codec
from sidecar.dataplane.codec_httptools import HttptoolsCodec
from sidecar.dataplane.connection import ConnectionInfo, HttpConnection
from sidecar.dataplane.messages import Handler, TlsInfo
from sidecar.dataplane.ping import ping_handler
from sidecar.dataplane.settings import DataplaneConfig, HttpLimits, ParserName
from sidecar.dataplane.sockets import bound_port, open_listeners
from sidecar.dataplane.tls import ServerTls, build_server_tls
from sidecar.dataplane.tls_stream import TlsStream

logger = logging.getLogger("sidecar.dataplane")

# accept() failures that mean "out of descriptors or memory for now": wait a
# moment rather than crash the listener (as trio.serve_listeners does).
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_RESOURCE_PAUSE = 0.1
# The ping port serves probes, not traffic; a small cap keeps a flood there
# from eating descriptors the data plane needs. Chosen without measuring.
_PING_CONNECTION_LIMIT = 32
# How often timeouts are checked: a quarter of the shortest timeout, within
# these bounds, so a timeout fires at most 25% (and 0.5 s) late.
_MIN_REAPER_TICK = 0.01
_MAX_REAPER_TICK = 0.5


def make_codec(parser: ParserName, limits: HttpLimits) -> ServerCodec:
    if parser is ParserName.H11:
        return H11Codec(limits)
    return HttptoolsCodec(limits)


@dataclass(eq=False)
class RunningDataplane:
    """What ``serve_dataplane`` reports through ``task_status.started``."""

    ports: tuple[int, ...]  # one per listening address, in bind order
    ping_ports: tuple[int, ...]
    _server: _Server = field(repr=False)

    def request_shutdown(self) -> None:
        """Begin a graceful shutdown; ``serve_dataplane`` returns when done."""
        self._server.request_shutdown()

    def replace_tls(self, server_tls: ServerTls) -> None:
        """Use ``server_tls`` for connections accepted from now on (reload)."""
        if self._server.server_tls is None:
            raise RuntimeError("the listener was started without TLS")
        self._server.server_tls = server_tls

    @property
    def open_connections(self) -> int:
        return len(self._server.connections)


async def serve_dataplane(
    config: DataplaneConfig,
    handler: Handler,
    *,
    server_tls: ServerTls | None = None,
    task_status: trio.TaskStatus[RunningDataplane] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``config.host``:``config.port`` until shut down.

    ``server_tls`` defaults to ``build_server_tls(config.tls)``; pass one to
    share a context or to test. With ``config.tls`` unset the listener speaks
    plain HTTP, which ``DataplaneConfig`` allows only with the development flag.
    """
    if server_tls is None and config.tls is not None:
        server_tls = build_server_tls(config.tls)
    server = _Server(config, handler, server_tls)
    listeners = await open_listeners(
        config.host, config.port, reuse_port=config.reuse_port, backlog=config.backlog
    )
    ping_listeners = await _open_ping_listeners(config)
    running = RunningDataplane(
        tuple(map(bound_port, listeners)),
        tuple(map(bound_port, ping_listeners)),
        server,
    )
    await server.run(listeners, ping_listeners, running, task_status)


async def _open_ping_listeners(config: DataplaneConfig) -> list[trio.SocketListener]:
    if config.ping_port is None:
        return []
    host = config.ping_host or config.host
    return await open_listeners(
        host, config.ping_port, reuse_port=config.reuse_port, backlog=config.backlog
    )


class _Server:
    def __init__(
        self, config: DataplaneConfig, handler: Handler, server_tls: ServerTls | None
    ) -> None:
        self.config = config
        self.handler = handler
        self.server_tls = server_tls
        self.connections: set[HttpConnection] = set()
        self._shutdown = trio.Event()
        limit = config.max_connections
        self._slots = trio.Semaphore(limit) if limit else None
        self._ping_slots = trio.Semaphore(_PING_CONNECTION_LIMIT)

    def request_shutdown(self) -> None:
        self._shutdown.set()
        for connection in list(self.connections):
            connection.close_when_idle()

    async def run(
        self,
        listeners: list[trio.SocketListener],
        ping_listeners: list[trio.SocketListener],
        running: RunningDataplane,
        task_status: trio.TaskStatus[RunningDataplane],
    ) -> None:
        try:
            async with trio.open_nursery() as reaper:
                reaper.start_soon(self._reap_expired_connections)
                async with trio.open_nursery() as connections:
                    await self._accept_until_shutdown(
                        listeners, ping_listeners, connections, running, task_status
                    )
                    connections.cancel_scope.deadline = (
                        trio.current_time() + self.config.shutdown_grace
                    )
                reaper.cancel_scope.cancel()
        finally:
            for listener in (*listeners, *ping_listeners):
                listener.socket.close()

    async def _reap_expired_connections(self) -> None:
        """Enforce the connections' timeouts (see ``connection``), each tick."""
        limits = self.config.limits
        shortest = min(limits.idle_timeout, limits.request_timeout, limits.send_timeout)
        tick = min(max(shortest / 4, _MIN_REAPER_TICK), _MAX_REAPER_TICK)
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for connection in list(self.connections):
                connection.expire_if_due(now)

    async def _accept_until_shutdown(
        self,
        listeners: list[trio.SocketListener],
        ping_listeners: list[trio.SocketListener],
        connections: trio.Nursery,
        running: RunningDataplane,
        task_status: trio.TaskStatus[RunningDataplane],
    ) -> None:
        async with trio.open_nursery() as acceptors:
            for listener in listeners:
                acceptors.start_soon(
                    self._accept_loop, listener, self._slots, connections, False
                )
            for listener in ping_listeners:
                acceptors.start_soon(
                    self._accept_loop, listener, self._ping_slots, connections, True
                )
            logger.info("data plane listening on ports %s", running.ports)
            task_status.started(running)
            await self._shutdown.wait()
            acceptors.cancel_scope.cancel()
        for listener in (*listeners, *ping_listeners):
            listener.socket.close()  # stop the kernel queueing new connections
        logger.info("data plane shutting down: %d open", len(self.connections))

    async def _accept_loop(
        self,
        listener: trio.SocketListener,
        slots: trio.Semaphore | None,
        connections: trio.Nursery,
        is_ping: bool,
    ) -> None:
        while True:
            if slots is not None:
                await slots.acquire()
            try:
                tcp = await listener.accept()
            except OSError as exc:
                _release(slots)
                await _pause_if_out_of_resources(exc)
                continue
            except BaseException:
                _release(slots)
                raise
            connections.start_soon(self._serve_tcp, tcp, slots, is_ping)

    async def _serve_tcp(
        self, tcp: trio.SocketStream, slots: trio.Semaphore | None, is_ping: bool
    ) -> None:
        peer = _peer(tcp)
        server_tls = None if is_ping else self.server_tls
        # TLS runs straight on the socket, which the TLS stream takes over.
        tls = TlsStream.take(tcp, server_tls) if server_tls is not None else None
        try:
            await self._serve_connection(tcp, tls, peer, is_ping)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            logger.debug("connection from %s ended: %s", peer, exc)
        except Exception:
            logger.exception("connection from %s failed; closed it", peer)
        finally:
            try:
                if tls is not None:
                    tls.close()  # no-op when the TLS stream closed it
                await tcp.aclose()  # likewise, or when the socket was taken
            finally:
                _release(slots)  # even when cancelled inside aclose

    async def _serve_connection(
        self,
        tcp: trio.SocketStream,
        tls: TlsStream | None,
        peer: tuple[str, int] | None,
        is_ping: bool,
    ) -> None:
        stream: trio.abc.Stream = tcp
        tls_info: TlsInfo | None = None
        if tls is not None:
            if not await _handshake(tls, peer):
                return
            stream, tls_info = tls, tls.tls_info()
        handler = ping_handler if is_ping else self.handler
        codec = make_codec(self.config.parser, self.config.limits)
        connection = HttpConnection(
            stream, codec, handler, self.config.limits, ConnectionInfo(peer, tls_info)
        )
        await self._track(connection)
        await stream.aclose()

    async def _track(self, connection: HttpConnection) -> None:
        self.connections.add(connection)
        if self._shutdown.is_set():
            connection.close_when_idle()
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)


async def _handshake(stream: TlsStream, peer: tuple[str, int] | None) -> bool:
    """True once the handshake succeeded; else closes ``stream`` and logs why."""
    try:
        with trio.fail_after(stream.handshake_timeout):
            await stream.do_handshake()
    except trio.TooSlowError:
        logger.info("TLS handshake with %s timed out", peer)
    except trio.BrokenResourceError as exc:
        _log_handshake_failure(stream, peer, exc)
    else:
        return True
    await stream.aclose()
    return False


def _log_handshake_failure(
    stream: TlsStream, peer: tuple[str, int] | None, exc: Exception
) -> None:
    if stream.notes.rejection is not None:
        logger.info("rejected mTLS client %s: %s", peer, stream.notes.rejection)
    else:
        logger.info("TLS handshake with %s failed: %s", peer, exc.__cause__ or exc)


def _peer(tcp: trio.SocketStream) -> tuple[str, int] | None:
    try:
        address = tcp.socket.getpeername()
    except OSError:  # the peer is gone already
        return None
    return (str(address[0]), int(address[1]))


def _release(slots: trio.Semaphore | None) -> None:
    if slots is not None:
        slots.release()


async def _pause_if_out_of_resources(exc: OSError) -> None:
    if exc.errno not in _RESOURCE_ERRNOS:
        raise exc
    logger.warning("accept failed (%s); pausing %.1f s", exc, _RESOURCE_PAUSE)
    await trio.sleep(_RESOURCE_PAUSE)
