"""The host-protocol listener: mutual TLS over TCP, pipelined frames.

Each accepted connection goes through, in order:

1. the fault switches: with ``refuse_connections`` or ``outage`` on, it is
   closed at once, before any TLS byte, as a host that drops connections;
2. a TLS handshake (1.2 or newer) with a deadline, in which the client must
   present a certificate issued by the configured client CA; any other
   client is refused by the handshake itself;
3. a read loop that feeds a FrameDecoder and answers the requests of each
   read at once, their replies sent together in one write; a request that
   must wait (an injected latency) gets a task of its own instead, up to
   ``max_in_flight`` at a time, and a request over that bound is answered
   BUSY. Replies are written as their requests finish, in any order, each
   carrying its request's ID, which is what lets a client pipeline; a lock
   keeps two writes from interleaving on the wire.

Bytes that are not a valid frame get an error reply at once, from the read
loop, so a confused client hears about it and the connection stays usable.
A connection ends at EOF, at the idle timeout (no request in flight and nothing
received for ``idle_timeout_s``), or when an outage is switched on.

The idle timeout is enforced by the server's one watcher task, which also
looks at the outage switch: each connection only records when it last
received something, and the watcher closes those idle for too long. Moving a
Trio cancel scope's deadline on every read cost about 5 us, some 5 % of the
simulator's CPU per read under load; the price is that the timeout fires up
to one watcher tick (``_WATCH_EVERY_S``) late.

One log line per command on ``simulator.server``, as key=value pairs: peer,
command, id, key, code, latency. Never a field value other than the ID and the
key reference: no plaintext, AAD, ciphertext or key material. The lines of
the commands answered for one read go out as one LogRecord
(``logformat.LineBatch``), written as one line each by ``LineFormatter``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from simulator.config import ConfigError, HostSettings
from simulator.faults import Faults
from simulator.hostproto.codec import (
    NEED_DATA,
    Command,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    Tag,
    encode_frame,
    reply_error,
    reply_to_frame_error,
    result_code,
)
from simulator.hostproto.handlers import HandlerContext, handle
from simulator.logformat import LineBatch
from simulator.stats import Stats
from simulator.tls_stream import ServerTlsStream

log = logging.getLogger(__name__)

# One read's worth; a whole default-size frame fits. Chosen, not measured.
_RECEIVE_BYTES = 65536
# How often the outage switch and the connections' idle times are looked at.
# Faults is plain data the console writes, with no way to wake a waiter, so
# the server polls; 50 ms is quick enough for tests and costs nothing
# measurable. The idle timeout may fire this much late.
_WATCH_EVERY_S = 0.05
# How long a polite TLS close (close_notify) may take before the socket is
# simply closed.
_CLOSE_TIMEOUT_S = 1.0
# TLS 1.2 suites: forward secret AEAD only. TLS 1.3 suites are all acceptable.
_CONNECTION_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# Commands counted under their own name in Stats; anything else is one bucket,
# so a client cannot grow the table with invented names.
_KNOWN_COMMANDS = frozenset(Command)
_UNKNOWN_BUCKET = "(unknown)"
# A reply carries its request's ID exactly when that ID is valid, so the log
# line takes it from there rather than checking the request's ID once more.
# Tags as plain strings: reading an enum member costs about 0.24 us.
_ID_TAG = Tag.ID.value
_KL_TAG = Tag.KL.value
_KU_TAG = Tag.KU.value
_INVALID_BUCKET = "(invalid)"
# The log line's "code=.. result=.." part per result code, made once:
# ``code.value`` and ``code.name`` are enum descriptors, about 0.3 us each.
_RESULT_TEXT = {code: f"code={code.value} result={code.name}" for code in ErrorCode}
# A key reference is logged only if it looks like one (label or UUID alphabet).
_LOGGABLE_KEY = re.compile(r"[A-Za-z0-9._-]{1,128}")


def server_tls_context(settings: HostSettings) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate from the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_ciphers(_TLS12_CIPHERS)
    # ServerTlsStream relies on it: no read ever waits for a write.
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(settings.cert, settings.key)
        context.load_verify_locations(cafile=settings.client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"host TLS: cannot load cert {settings.cert}, key {settings.key} or "
            f"client_ca {settings.client_ca}: {exc}"
        ) from exc
    return context


async def serve_host_protocol(
    settings: HostSettings,
    handler_ctx: HandlerContext,
    faults: Faults,
    stats: Stats,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``task_status.started`` gets the bound port."""
    server = _HostServer(settings, handler_ctx, faults, stats)
    await server.serve(task_status)


@dataclass
class _HostServer:
    settings: HostSettings
    handler_ctx: HandlerContext
    faults: Faults
    stats: Stats
    tls: ssl.SSLContext = field(init=False)
    connections: set[_Connection] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.tls = server_tls_context(self.settings)

    async def serve(self, task_status: trio.TaskStatus[int]) -> None:
        listeners = await trio.open_tcp_listeners(
            self.settings.port, host=self.settings.listen
        )
        port: int = listeners[0].socket.getsockname()[1]
        log.info(
            "host protocol listening address=%s port=%d", self.settings.listen, port
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_connections)
            await nursery.start(trio.serve_listeners, self._accept, listeners)
            task_status.started(port)

    async def _watch_connections(self) -> None:
        """Close every connection on an outage, and the idle ones always."""
        while True:
            await trio.sleep(_WATCH_EVERY_S)
            if self.faults.outage and self.connections:
                log.warning(
                    "outage: closing connections count=%d", len(self.connections)
                )
                for connection in list(self.connections):
                    connection.close("outage")
            idle_since = trio.current_time() - self.settings.idle_timeout_s
            for connection in list(self.connections):
                connection.close_if_idle_since(idle_since)

    async def _accept(self, tcp: trio.SocketStream) -> None:
        peer = _peer_name(tcp)
        if self.faults.refuse_connections or self.faults.outage:
            log.info("connection refused peer=%s reason=fault", peer)
            await trio.aclose_forcefully(tcp)
            return
        stream = ServerTlsStream.take(tcp, self.tls)
        try:
            if await self._handshake(stream, peer):
                await self._serve(stream, peer)
        except Exception:
            # The boundary of a connection: a bug ends this connection, never
            # the listener. Cancellation is a BaseException and passes through.
            log.exception("connection failed peer=%s", peer)
        finally:
            stream.close()  # no-op when the connection closed it already

    async def _handshake(self, stream: ServerTlsStream, peer: str) -> bool:
        with trio.move_on_after(self.settings.handshake_timeout_s):
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError as exc:
                log.info("tls handshake failed peer=%s error=%s", peer, exc.__cause__)
                return False
            return True
        log.info("tls handshake timed out peer=%s", peer)
        return False

    async def _serve(self, stream: ServerTlsStream, peer: str) -> None:
        connection = _Connection(self, stream, peer)
        self.connections.add(connection)
        self.stats.connection_opened()
        log.info("connection opened peer=%s client=%s", peer, _client_name(stream))
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            self.stats.connection_closed()
            log.info("connection closed peer=%s reason=%s", peer, connection.reason)


class _Connection:
    """One client's TLS stream: the read loop and its request tasks."""

    def __init__(self, server: _HostServer, stream: ServerTlsStream, peer: str) -> None:
        self._server = server
        self._stream = stream
        self.peer = peer
        self.reason = "eof"
        self._decoder = FrameDecoder(server.settings.max_frame_bytes)
        self._send_lock = trio.Lock()
        self._in_flight = 0
        self._scope = trio.CancelScope()
        # When something last arrived or a request task ended (trio clock).
        self._last_active = trio.current_time()
        # The command log lines of the read being answered, written together.
        self._log_lines: list[str] = []

    def close(self, reason: str) -> None:
        """End the connection now, dropping requests in flight unanswered."""
        self.reason = reason
        self._scope.cancel()

    def close_if_idle_since(self, moment: float) -> None:
        """Close for the idle timeout if nothing happened after ``moment``.

        A connection with a request in flight is busy, not idle.
        """
        if self._in_flight == 0 and self._last_active <= moment:
            self.close("idle timeout")

    async def run(self) -> None:
        with self._scope:
            async with trio.open_nursery() as nursery:
                await self._read_loop(nursery)
            await self._close_politely()
        if self._scope.cancelled_caught:
            await trio.aclose_forcefully(self._stream)

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                data = await self._stream.receive_some(_RECEIVE_BYTES)
            except _CONNECTION_GONE:
                self.reason = "connection lost"
                return
            if not data:
                return
            self._last_active = trio.current_time()
            self._decoder.receive_data(data)
            await self._dispatch(nursery)

    async def _dispatch(self, nursery: trio.Nursery) -> None:
        """Answer every frame decoded so far; send their replies as one write.

        Commands are pure computation, so without a latency or outage fault
        they are answered right here, in arrival order, and the replies to
        one read leave in one TLS write: a task, a lock and a write per
        command were most of the simulator's CPU per command under load
        (docs/performance.md). A command that must wait (latency) or never
        be answered (outage) gets a task of its own, as the bound on
        requests in flight counts.
        """
        replies: list[bytes] = []
        while (event := self._decoder.next_event()) is not NEED_DATA:
            if isinstance(event, FrameError):
                replies.append(self._recorded(event, reply_to_frame_error(event)))
            elif self._in_flight >= self._server.settings.max_in_flight:
                busy = reply_error(event, ErrorCode.BUSY, "too many requests in flight")
                replies.append(self._recorded(event, busy))
            elif self._server.faults.latency_ms or self._server.faults.outage:
                self._in_flight += 1
                nursery.start_soon(self._run_request, event)
            else:
                reply = self._answer_now(event, _now(), _now)
                if reply is not None:
                    replies.append(reply)
        self._write_log_lines()
        if replies:
            await self._send(b"".join(replies))

    async def _run_request(self, request: Frame) -> None:
        started = trio.current_time()
        try:
            faults = self._server.faults
            if faults.latency_ms:
                await trio.sleep(faults.latency_ms / 1000)
            if faults.outage:
                # The watcher may not have seen it yet; do not answer regardless.
                self.close("outage")
                await trio.lowlevel.checkpoint()
            reply = self._answer_now(request, started, trio.current_time)
            self._write_log_lines()
            if reply is not None:
                await self._send(reply)
        finally:
            self._in_flight -= 1
            self._last_active = trio.current_time()

    def _answer_now(
        self, request: Frame, started: float, clock: Callable[[], float]
    ) -> bytes | None:
        """The encoded reply, recorded and logged; None if it is dropped.

        ``started`` is a reading of ``clock``, which times the command.
        """
        faults = self._server.faults
        if faults.inject_error():
            reply = reply_error(request, ErrorCode.INJECTED_FAULT, "injected fault")
            fault = "error"
        else:
            reply, fault = handle(request, self._server.handler_ctx), "none"
        dropped = faults.drop_reply()
        self._record(request, reply, clock() - started, fault, dropped)
        return None if dropped else encode_frame(reply)

    def _recorded(self, request: Frame | FrameError, reply: Frame) -> bytes:
        self._record(request, reply, 0.0, "none", dropped=False)
        return encode_frame(reply)

    async def _send(self, data: bytes) -> None:
        # The lock only orders the writes of request tasks (latency faults);
        # most sends find it free. ``trio.Lock.acquire`` yields to the
        # scheduler even then, a round trip per read that cost more than
        # the commands' own work; the stream still checkpoints when the
        # socket would block and every few calls (tls_stream._YIELD_EVERY).
        lock = self._send_lock
        try:
            try:
                lock.acquire_nowait()
            except trio.WouldBlock:
                await lock.acquire()
            try:
                await self._stream.send_all(data)
            finally:
                lock.release()
        except _CONNECTION_GONE:
            self.close("connection lost")

    async def _close_politely(self) -> None:
        with trio.move_on_after(_CLOSE_TIMEOUT_S):
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError
            ):
                await self._stream.aclose()

    def _record(
        self,
        request: Frame | FrameError,
        reply: Frame,
        seconds: float,
        fault: str,
        dropped: bool,
    ) -> None:
        code = result_code(reply)
        command = _stats_bucket(request)
        self._server.stats.record(command, code, seconds)
        if log.isEnabledFor(logging.INFO):
            self._log_lines.append(
                f"command peer={self.peer} command={reply.command} "
                f"id={reply.get(_ID_TAG) or '-'} key={_key_reference(request)} "
                f"{_RESULT_TEXT[code]} "
                f"latency_ms={seconds * 1000:.1f} fault={fault} "
                f"dropped={'yes' if dropped else 'no'}"
            )

    def _write_log_lines(self) -> None:
        """The command lines gathered so far as one INFO record, if any.

        One record and one handler pass (one ``write``) for all the commands
        of a read, instead of one per command; ``log.info`` would also walk
        the stack for the caller (``findCaller``), which no line uses.
        """
        if self._log_lines:
            lines, self._log_lines = self._log_lines, []
            log.handle(LineBatch(log.name, logging.INFO, __file__, lines))


# Times a command answered inline: ``trio.current_time`` is the same clock
# (``perf_counter`` plus an offset) behind 0.35 us more of Python per call.
_now = time.perf_counter


def _stats_bucket(request: Frame | FrameError) -> str:
    if isinstance(request, FrameError):
        return _INVALID_BUCKET
    return request.command if request.command in _KNOWN_COMMANDS else _UNKNOWN_BUCKET


def _key_reference(request: Frame | FrameError) -> str:
    if isinstance(request, FrameError):
        return "-"
    value = request.get(_KL_TAG) or request.get(_KU_TAG)
    if value is None:
        return "-"
    return value if _LOGGABLE_KEY.fullmatch(value) else "(invalid)"


def _peer_name(tcp: trio.SocketStream) -> str:
    try:
        host, port = tcp.socket.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"


def _client_name(stream: ServerTlsStream) -> str:
    """The client certificate's common name, for the connection log line."""
    certificate = stream.getpeercert()
    for entry in (certificate or {}).get("subject", ()):
        for name, value in entry:
            if name == "commonName":
                return str(value)
    return "-"
