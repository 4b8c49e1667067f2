"""One structured log line per XKS request, and the JSON-lines log format.

Spec, "Logging": request metadata SHOULD be logged (``kmsRequestId`` above
all, to correlate with CloudTrail), with the processing time, whether the
request succeeded and the error if not; for an AccessDenied the policy
statement responsible; the identifier of the HSM that served the request MAY
be logged. Plaintext MUST NOT be.

So every request the handler answers leaves exactly one record on the logger
``sidecar.audit``, built from a fixed list of fields (``AuditRecord``). The
record never holds the body, the headers or any value derived from the
plaintext, AAD, ciphertext, key material, secrets or the Authorization
header: what is not collected cannot leak, whatever a later edit logs.

Fields (absent ones are left out of the line)::

    kmsRequestId kmsOperation awsPrincipalArn kmsKeyArn kmsViaService
    awsSourceVpc awsSourceVpce     requestMetadata, spelled as in the spec
    keystore                       the keystore the URI path selected
    operation                      health | metadata | encrypt | decrypt
    external_key_id                from the URI
    outcome                        "ok", or the errorName answered
    status                         HTTP status answered
    latency_ms                     handler time, request parsed to response built
    hsm_node                       the CryptoHub node that served it, if known
    access_key_id                  the SigV4 access key id that verified
    tls_client_cn                  the mTLS client certificate's CN
    peer                           client address
    reason                         why it failed (SigV4 cause, deciding policy
                                   rule, backend detail); never sent to the caller
"""

from __future__ import annotations

import json
import json.encoder
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Final, TextIO

AUDIT_LOGGER_NAME: Final = "sidecar.audit"
audit_log = logging.getLogger(AUDIT_LOGGER_NAME)

# The record of the request the current Trio task is handling, so a backend
# deep in the call can say which HSM node served it without the service
# layer passing it up (see ``note_hsm_node``).
_current: ContextVar[AuditRecord | None] = ContextVar("sidecar_audit", default=None)


class AuditRecord:
    """What one request did, filled in step by step along the pipeline."""

    __slots__ = (
        "access_key_id",
        "external_key_id",
        "hsm_node",
        "keystore",
        "metadata",
        "operation",
        "peer",
        "reason",
        "tls_client_cn",
    )

    def __init__(self, peer: str | None, tls_client_cn: str | None) -> None:
        self.peer = peer
        self.tls_client_cn = tls_client_cn
        self.keystore: str | None = None
        self.operation: str | None = None
        self.external_key_id: str | None = None
        self.access_key_id: str | None = None
        # requestMetadata as (spec name, value) pairs, set once parsed.
        self.metadata: tuple[tuple[str, str | None], ...] = ()
        self.hsm_node: str | None = None
        self.reason: str | None = None

    def fields(self, outcome: str, status: int, latency_ms: float) -> dict[str, object]:
        """The log line's fields, the absent ones left out.

        In ``_FIELD_ORDER``, spelled out: reading each slot directly costs
        about half as much as a ``getattr`` loop over the names. Plain loops,
        not comprehensions: in Python 3.11 a comprehension is a call.
        """
        line: dict[str, object] = {}
        for name, value in self.metadata:
            if value:
                line[name] = value
        if self.keystore is not None:
            line["keystore"] = self.keystore
        if self.operation is not None:
            line["operation"] = self.operation
        if self.external_key_id is not None:
            line["external_key_id"] = self.external_key_id
        if self.access_key_id is not None:
            line["access_key_id"] = self.access_key_id
        if self.tls_client_cn is not None:
            line["tls_client_cn"] = self.tls_client_cn
        if self.peer is not None:
            line["peer"] = self.peer
        if self.hsm_node is not None:
            line["hsm_node"] = self.hsm_node
        if self.reason is not None:
            line["reason"] = self.reason
        line["outcome"] = outcome
        line["status"] = status
        line["latency_ms"] = round(latency_ms, 3)
        return line


AuditToken = Token["AuditRecord | None"]


# The order of the line's own fields (``AuditRecord.fields`` writes them).
_FIELD_ORDER = (
    "keystore",
    "operation",
    "external_key_id",
    "access_key_id",
    "tls_client_cn",
    "peer",
    "hsm_node",
    "reason",
)


def begin(record: AuditRecord) -> AuditToken:
    """Make ``record`` the current task's; returns a token for ``end``."""
    return _current.set(record)


def end(token: AuditToken) -> None:
    _current.reset(token)


def note_hsm_node(node: str) -> None:
    """Record which HSM node serves the current request (backends call this)."""
    record = _current.get()
    if record is not None:
        record.hsm_node = node


def emit(record: AuditRecord, outcome: str, status: int, latency_ms: float) -> None:
    """Write the request's one line.

    A served sidecar writes it straight to its log stream (``writing_to``),
    formatted here as ``JsonLineFormatter`` formats it. Through ``logging``
    each line took a LogRecord, the logger's and the handler's dispatch, two
    lock round trips and the formatter: the line's cost doubled, about a
    tenth of the sidecar's CPU per request then (docs/performance.md).
    Otherwise (tests, the library used on its own) it is a record of the
    logger ``sidecar.audit`` at INFO, so the level can silence it: one
    LogRecord copied from a template (``_LineTemplate``) and handed straight
    to the handlers, since ``Logger.info`` would also walk the stack for the
    caller and copy ``extra`` key by key.
    """
    destination = _destination
    if destination is not None:
        destination.write(record.fields(outcome, status, latency_ms))
    elif audit_log.isEnabledFor(logging.INFO):
        line = _TEMPLATE.record()
        line.audit = record.fields(outcome, status, latency_ms)
        audit_log.handle(line)


class _Destination:
    """Where a served sidecar's request lines go, and in which format.

    One ``write`` and ``flush`` per line, as ``logging.StreamHandler`` does:
    the line is with the kernel before the next request is read, and on
    stderr (line-buffered) it is a single system call, atomic for a pipe up
    to PIPE_BUF bytes, so the lines of worker processes sharing a pipe never
    interleave. Batching lines was tried and dropped: it saved half a
    system call per request and cost more in the event-loop hook that had
    to flush the batch than it saved (docs/performance.md).
    """

    __slots__ = ("failed", "stream", "text", "worker")

    def __init__(self, stream: TextIO, json_lines: bool, worker: int | None) -> None:
        self.stream = stream
        self.text = None if json_lines else TextLineFormatter()
        self.worker = worker  # a worker process's index, added to each line
        self.failed = False

    def write(self, fields: dict[str, object]) -> None:
        if self.worker is not None:
            fields["worker"] = self.worker
        if self.text is None:
            line = json_line(fields, time.time())
        else:
            record = _TEMPLATE.record()
            record.audit = fields
            line = self.text.format(record) + "\n"
        try:
            self.stream.write(line)
            self.stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream is closed
            self._report(exc)

    def _report(self, exc: Exception) -> None:
        # Where request lines cannot go, log lines likely cannot either; say
        # it once through logging, whose own failures are its handler's.
        if not self.failed:
            self.failed = True
            _log.error("cannot write request lines: %s", exc)


_destination: _Destination | None = None
_log = logging.getLogger("sidecar")


@contextmanager
def writing_to(
    stream: TextIO, *, json_lines: bool = True, worker: int | None = None
) -> Iterator[None]:
    """Write request lines to ``stream`` while the block runs, then send them
    where they went before (the ``sidecar.audit`` logger, at first)."""
    global _destination
    before, _destination = _destination, _Destination(stream, json_lines, worker)
    try:
        yield
    finally:
        _destination = before


def json_line(fields: dict[str, object], created: float) -> str:
    """The request line as ``JsonLineFormatter`` writes it, newline included."""
    return (
        f'{{"ts":"{_utc_timestamp(created)}",{_REQUEST_FIXED},{_encode(fields)[1:]}\n'
    )


class _LineTemplate:
    """The request line's LogRecord, built once per process and thread.

    ``LogRecord.__init__`` sets some twenty attributes and asks for the
    thread, the process and the time; for the request line all but the time
    are the same every time. Copying a template's attributes and setting
    the time costs about a fifth as much (tests/bench/handler_bench.py),
    and handlers and formatters see an ordinary ``LogRecord``.
    """

    def __init__(self) -> None:
        self._thread: int | None = None
        self._attributes: dict[str, object] = {}
        self._created = 0.0
        self._relative = 0.0

    def forget(self) -> None:
        """Rebuild on next use (after a fork: the process id changed)."""
        self._thread = None

    def record(self) -> logging.LogRecord:
        # The process is watched by ``os.register_at_fork`` below rather
        # than by an ``os.getpid()`` per line (a system call).
        thread = threading.get_ident()
        if thread != self._thread:
            self._rebuild(thread)
        line = logging.LogRecord.__new__(logging.LogRecord)
        line.__dict__ = self._attributes.copy()  # cheaper than update()
        now = time.time()
        line.created = now
        line.msecs = int((now - int(now)) * 1000) + 0.0
        line.relativeCreated = self._relative + (now - self._created) * 1000
        return line

    def _rebuild(self, thread: int) -> None:
        template = audit_log.makeRecord(
            AUDIT_LOGGER_NAME, logging.INFO, __file__, 0, _MESSAGE, (), None
        )
        self._attributes = dict(template.__dict__)
        self._created = template.created
        self._relative = template.relativeCreated
        self._thread = thread


_MESSAGE: Final = "xks request"
_TEMPLATE = _LineTemplate()
os.register_at_fork(after_in_child=_TEMPLATE.forget)


# -- the log format ------------------------------------------------------------


class JsonLineFormatter(logging.Formatter):
    """Every log record as one line of JSON: time, level, logger, message.

    An audit record's fields are merged into the top level of its line, so a
    log pipeline can index ``kmsRequestId`` directly. A traceback, if any,
    goes into ``exc`` on the same line: one event, one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        # The four fixed fields are written as text and only the rest goes
        # through json.dumps: this runs once per request (see ``emit``).
        head = f'{{"ts":"{_utc_timestamp(record.created)}",' + _fixed_fields(
            record.levelname, record.name, record.getMessage()
        )
        rest: dict[str, object] = {}
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            if not _FIXED_FIELDS.isdisjoint(audit):
                # An audit field named like a fixed one replaces it, once.
                return self._merged(record, audit)
            if not record.exc_info:
                # The request line: encoded as it is, without a copy.
                rest = audit
            else:
                rest.update(audit)
        if record.exc_info:
            rest["exc"] = self.formatException(record.exc_info)
        if not rest:
            return head + "}"
        return head + "," + _encode(rest)[1:]

    def _merged(self, record: logging.LogRecord, audit: dict[str, object]) -> str:
        line: dict[str, object] = {
            "ts": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(audit)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line)


# ``json.dumps(..., separators=(",", ":"), default=str)``, built once.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
# The C encoder ``_ENCODER.encode`` builds for each document, called
# directly: ``dumps`` with arguments first builds a ``JSONEncoder``, and
# ``encode`` then goes through two Python frames and a closure. Together
# about a fifth of the request line's cost (handler bench, callgrind).
_C_MAKE_ENCODER: Callable[..., Callable[[object, int], Iterable[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)


def _encode(document: dict[str, object]) -> str:
    """``_ENCODER.encode(document)``, the same text."""
    if _C_MAKE_ENCODER is None:
        return _ENCODER.encode(document)
    encoder = _C_MAKE_ENCODER(
        {},  # markers: circular references are refused, as by json.dumps
        _ENCODER.default,
        json.encoder.encode_basestring_ascii,  # ensure_ascii=True
        None,  # indent
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )
    return "".join(encoder(document, 0))


class TextLineFormatter(logging.Formatter):
    """Human-readable lines for development; audit fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            pairs = " ".join(f"{key}={value}" for key, value in audit.items())
            text = f"{text} {pairs}"
        return text


_FIXED_FIELDS: Final = frozenset({"ts", "level", "logger", "msg"})


_FIXED_TEXT: dict[tuple[str, str, str], str] = {}
# Levels and loggers are few; messages vary, so the cache is bounded.
_FIXED_TEXT_SIZE: Final = 256


def _fixed_fields(level: str, logger: str, message: str) -> str:
    """``"level":..,"logger":..,"msg":..`` as JSON, cached: the request line
    repeats the same three on every request."""
    key = (level, logger, message)
    text = _FIXED_TEXT.get(key)
    if text is None:
        text = (
            f'"level":{json.dumps(level)},"logger":{json.dumps(logger)},'
            f'"msg":{json.dumps(message)}'
        )
        if len(_FIXED_TEXT) >= _FIXED_TEXT_SIZE:
            _FIXED_TEXT.clear()
        _FIXED_TEXT[key] = text
    return text


# The request line's fixed fields, as JsonLineFormatter writes them.
_REQUEST_FIXED: Final = _fixed_fields("INFO", AUDIT_LOGGER_NAME, _MESSAGE)


class _SecondText:
    """The "YYYY-MM-DDTHH:MM:SS" of the last second asked for.

    strftime costs more than the rest of a line's fixed fields; within one
    second every line shares it. One tuple swap, so threads may share it.
    """

    def __init__(self) -> None:
        self._last: tuple[int, str] = (-1, "")

    def of(self, created: float) -> str:
        second = int(created)
        last = self._last
        if last[0] == second:
            return last[1]
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._last = (second, text)
        return text


_SECONDS = _SecondText()


def _utc_timestamp(created: float) -> str:
    return f"{_SECONDS.of(created)}.{int(created % 1 * 1000):03d}Z"
