"""One sidecar serving in this process until a signal stops it.

Shared by ``serve`` with one worker (``sidecar.cli``) and by each worker
process of several (``sidecar.worker_process``): the log set-up, the signal
handling, and telling start-up problems (configuration, certificates, a port
in use: one line and exit status 1) from bugs (a traceback).

Signals: the first SIGTERM or SIGINT asks for a graceful shutdown (stop
accepting, finish requests in flight, close the HSM connections); a second
stops at once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from sidecar import audit
from sidecar.app import HealthShare, RunningSidecar, run_sidecar
from sidecar.audit import AUDIT_LOGGER_NAME, JsonLineFormatter, TextLineFormatter
from sidecar.backends.base import BackendStartupError
from sidecar.config import ConfigError, LoggingSettings, SidecarConfig
from sidecar.dataplane import TlsConfigError

log = logging.getLogger("sidecar")

# "Cannot start as configured", reported in one line, not as a traceback.
# OSError covers a port already in use.
STARTUP_ERRORS = (ConfigError, TlsConfigError, BackendStartupError, OSError)

OnReady = Callable[[RunningSidecar], Awaitable[None]]


def configure_logging(
    settings: LoggingSettings, override: str | None, *, worker: int | None = None
) -> None:
    """Log to stderr as configured; a worker's lines carry its index."""
    handler = logging.StreamHandler(sys.stderr)
    json_lines = settings.format == "json"
    handler.setFormatter(JsonLineFormatter() if json_lines else TextLineFormatter())
    if worker is not None:
        handler.addFilter(_WorkerField(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(override or settings.level)
    audit_logger = logging.getLogger(AUDIT_LOGGER_NAME)
    audit_logger.setLevel(logging.INFO if settings.audit else logging.CRITICAL + 1)


class _WorkerField(logging.Filter):
    """Adds ``worker`` (the index) to every line of a worker process.

    Both formatters put a record's ``audit`` fields into the line, so the
    field goes there: into the request line's own fields (a fresh dict per
    request), or as the only field of any other line.
    """

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "audit", None)
        if isinstance(fields, dict):
            fields["worker"] = self._index
        else:
            record.audit = {"worker": self._index}
        return True


def startup_problems(exc: BaseException) -> list[BaseException] | None:
    """The start-up problems ``exc`` consists of, or None if it is a bug."""
    problems = list(_leaves(exc))
    if all(isinstance(problem, STARTUP_ERRORS) for problem in problems):
        return problems
    return None


def report_startup_problems(problems: list[BaseException]) -> int:
    for problem in problems:
        log.error("cannot run: %s", problem)
    return 1


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


async def serve_until_signalled(
    config: SidecarConfig,
    on_ready: OnReady,
    *,
    health_share: HealthShare | None = None,
    worker: int | None = None,
) -> None:
    """Run the sidecar; ``on_ready`` once it listens; stop on SIGTERM/SIGINT.

    ``worker``: this process's index when it is one of several workers.
    """
    # The receiver is installed before anything starts, so a signal during
    # start-up also stops cleanly instead of raising KeyboardInterrupt.
    with (
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        _request_lines(config.logging, worker),
    ):
        async with trio.open_nursery() as nursery:
            running: RunningSidecar = await nursery.start(
                _run_then_stop, config, health_share, nursery.cancel_scope
            )
            await on_ready(running)
            nursery.start_soon(_stop_on_signals, signals, running, nursery.cancel_scope)


@contextmanager
def _request_lines(settings: LoggingSettings, worker: int | None) -> Iterator[None]:
    """While serving, request lines bypass ``logging`` (``audit.emit``): the
    same format, the same stderr, less work per line."""
    if not settings.audit:
        yield
        return
    json_lines = settings.format == "json"
    with audit.writing_to(sys.stderr, json_lines=json_lines, worker=worker):
        yield


async def _run_then_stop(
    config: SidecarConfig,
    health_share: HealthShare | None,
    others: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[RunningSidecar],
) -> None:
    await run_sidecar(config, health_share=health_share, task_status=task_status)
    others.cancel()  # the sidecar is done: stop listening for signals


async def _stop_on_signals(
    signals: AsyncIterator[int],
    running: RunningSidecar,
    everything: trio.CancelScope,
) -> None:
    graceful = True
    async for signum in signals:
        name = signal.Signals(signum).name
        if graceful:
            log.info("stopping signal=%s: finishing requests in flight", name)
            running.request_shutdown()
            graceful = False
        else:
            log.warning("stopping now signal=%s", name)
            everything.cancel()


def write_ready_file(path: Path, document: dict[str, object]) -> None:
    # Written under another name and renamed, so a reader never sees half.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document) + "\n")
    temporary.replace(path)
