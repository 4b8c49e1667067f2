"""One HTTP/1.1 connection: read a request, await the handler, answer, repeat.

The loop is strictly sequential, which is what answers pipelined requests in
order and lets the stream serve one task at a time (see ``tls_stream``).

Timeouts (``HttpLimits``): waiting for the first byte of a request is the
keep-alive idle timeout, after which the connection closes quietly; once a
request has begun it must be complete within the request timeout, or it is
answered 408 and the connection closed (RFC 9110 section 15.5.9); writing a
response has its own timeout. The handler has none: it bounds its own work.

Each connection only records its current ``deadline`` (a float, for the phase
it is in); the listener's reaper task cancels the connections whose deadline
has passed, checking a few times a second. A fresh Trio cancel scope per
receive and per send would cost more per request than the rest of the HTTP
layer on the target machines; the price is that a timeout fires up to one
reaper tick late.

Graceful shutdown (``close_when_idle``): a connection waiting for a request
closes at once; one with a request in flight answers it with
``Connection: close`` and then closes.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from dataclasses import dataclass

import trio

from sidecar.dataplane.codec import (
    HttpProtocolError,
    RequestBody,
    RequestHead,
    ServerCodec,
    Signal,
)
from sidecar.dataplane.framing import error_response, frame_response
from sidecar.dataplane.messages import (
    INTERNAL_ERROR_RESPONSE,
    Handler,
    HttpRequest,
    HttpResponse,
    TlsInfo,
)
from sidecar.dataplane.settings import HttpLimits

logger = logging.getLogger("sidecar.dataplane.http")

_RECEIVE_SIZE = 64 * 1024


class _Closing(Exception):
    """End the connection quietly: the peer closed between requests."""


class Phase(enum.Enum):
    """Where a connection is; each phase but HANDLING has its own timeout."""

    IDLE = "idle"  # waiting for the first byte of a request
    RECEIVING = "receiving"  # a request has begun
    HANDLING = "handling"  # the handler runs
    SENDING = "sending"  # writing the response


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What every request on one connection shares."""

    peer: tuple[str, int] | None
    tls: TlsInfo | None


class HttpConnection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        codec: ServerCodec,
        handler: Handler,
        limits: HttpLimits,
        info: ConnectionInfo,
    ) -> None:
        self._stream = stream
        self._codec = codec
        self._handler = handler
        self._limits = limits
        self._info = info
        self._closing = False
        self._scope = trio.CancelScope()
        self._phase = Phase.IDLE
        self._expired_in: Phase | None = None
        self._timeouts = {
            Phase.IDLE: limits.idle_timeout,
            Phase.RECEIVING: limits.request_timeout,
            Phase.SENDING: limits.send_timeout,
        }
        self.deadline = trio.current_time() + limits.idle_timeout

    def close_when_idle(self) -> None:
        """Graceful shutdown: finish the request in flight, if any, then close."""
        self._closing = True
        if self._phase is Phase.IDLE:
            self._scope.cancel()

    def expire_if_due(self, now: float) -> None:
        """Called by the reaper: end the connection if its deadline passed."""
        if now >= self.deadline:
            self._expired_in = self._phase
            self._scope.cancel()

    async def serve(self) -> None:
        """Serve requests until the peer, a limit, a timeout or shutdown ends it."""
        error: HttpProtocolError | None = None
        with self._scope:
            try:
                await self._serve_requests()
            except _Closing:
                pass
            except HttpProtocolError as exc:
                error = exc
        if self._expired_in is Phase.RECEIVING:
            error = HttpProtocolError(408, "request not received in time")
        if error is not None:
            await self._answer_protocol_error(error)

    async def _serve_requests(self) -> None:
        served = 0
        codec, stream, handler = self._codec, self._stream, self._handler
        while not self._closing:
            request = await self._read_request()
            served += 1
            self._phase = Phase.HANDLING  # no timeout: the handler bounds itself
            self.deadline = math.inf
            # The one catch-all at the request boundary. Exception, not
            # BaseException: Cancelled (shutdown, timeouts) must pass through.
            try:
                response = await handler(request)
            except Exception:
                logger.exception(
                    "handler raised on %s %s; answered 500",
                    request.method,
                    request.raw_path.partition("?")[0],
                )
                response = INTERNAL_ERROR_RESPONSE
            close = self._closing or self._reached_request_limit(served)
            self._enter(Phase.SENDING)
            await stream.send_all(self._frame(response, close=close))
            if close or not codec.keep_alive:
                return
            codec.start_next_request()
            self._enter(Phase.IDLE)

    def _enter(self, phase: Phase) -> None:
        """A phase with a timeout (not HANDLING): its deadline starts now."""
        self._phase = phase
        self.deadline = trio.current_time() + self._timeouts[phase]

    def _reached_request_limit(self, served: int) -> bool:
        limit = self._limits.max_requests_per_connection
        return limit is not None and served >= limit

    # -- reading -----------------------------------------------------------------

    async def _read_request(self) -> HttpRequest:
        codec = self._codec
        head = codec.next_event()
        while head is Signal.NEED_DATA:
            await self._receive_more()
            head = codec.next_event()
        if not isinstance(head, RequestHead):
            raise _Closing  # the peer closed between requests
        event = codec.next_event()
        if event is Signal.NEED_DATA and head.expects_continue:
            # Sent within the request's deadline, not a send deadline.
            await self._stream.send_all(codec.continue_bytes())
        while event is Signal.NEED_DATA:
            await self._receive_more()
            event = codec.next_event()
        if not isinstance(event, RequestBody):
            raise HttpProtocolError(400, "incomplete request")
        info = self._info
        return HttpRequest(
            head.method,
            head.target,
            head.headers,
            event.body,
            head.http_version,
            info.peer,
            info.tls,
        )

    async def _receive_more(self) -> None:
        self._start_request_clock()  # bytes of a pipelined request may wait
        data = await self._stream.receive_some(_RECEIVE_SIZE)
        self._codec.receive_data(data)
        self._start_request_clock()

    def _start_request_clock(self) -> None:
        # The request timeout runs from the first byte of the request.
        if self._phase is Phase.IDLE and self._codec.request_in_progress:
            self._enter(Phase.RECEIVING)

    # -- answering ---------------------------------------------------------------

    def _frame(self, response: HttpResponse, *, close: bool) -> bytes:
        try:
            return self._codec.response_bytes(response, close=close)
        except Exception:  # a handler's response the codec cannot frame
            logger.exception("cannot frame the handler's response; answered 500")
            return self._codec.response_bytes(INTERNAL_ERROR_RESPONSE, close=True)

    async def _answer_protocol_error(self, exc: HttpProtocolError) -> None:
        logger.info(
            "answered %d (%s) to %s and closed", exc.status, exc.reason, self._info.peer
        )
        data = frame_response(
            error_response(exc.status, exc.reason), close=True, head_only=False
        )
        # The peer may be gone already, or never read: we are closing anyway.
        with (
            trio.move_on_after(self._limits.send_timeout),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await self._stream.send_all(data)
