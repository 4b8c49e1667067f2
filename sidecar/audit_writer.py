"""Writing the request lines: whole lines, few system calls, never held long.

A served sidecar writes one audit line per request, 1,800 a second at KMS's
default quota. Through ``logging`` each line took a record, two handler lock
round trips, the formatter and a ``write`` system call of its own: about a
tenth of the sidecar's CPU per request (docs/performance.md). The writer
formats the line itself (the same JSON as ``audit.JsonLineFormatter``) and
gathers lines into one ``write`` of at most ``PIPE_BUF`` bytes:

* **When the lines go out.** As soon as the event loop is about to wait
  with nothing to run (a Trio instrument, ``before_io_wait``), when the next
  line would not fit the batch, when the oldest line has waited
  ``MAX_DELAY_S``, and when the writer is closed (graceful shutdown, process
  exit). A lone request's line is written the moment its answer is sent; under
  load, lines leave in batches of up to ``PIPE_BUF`` bytes, a few
  milliseconds apart. Outside a running loop (no instrument installed)
  every line is written at once.
* **Whole lines.** A write of at most ``PIPE_BUF`` bytes to a pipe is atomic
  (pipe(7)), so worker processes sharing one stderr pipe never interleave
  within a line; a batch never crosses that size, and a single longer line
  is written alone, as ``logging`` would.
* **What a crash loses.** A process killed with SIGKILL loses the lines of
  its current batch, at most ``MAX_DELAY_S`` worth and only under load; a
  line that was written is with the kernel. ``logging`` to a pipe loses the
  same on a kill during its write, so the difference is the batch.

Other log lines still go through ``logging`` to the same stderr, written at
once; an audit line may therefore follow a log line emitted a few
milliseconds after it. Each line carries its own ``ts``.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Final, TextIO

import trio

log = logging.getLogger("sidecar")

# pipe(7): writes of at most PIPE_BUF bytes are atomic (4096 on Linux).
PIPE_BUF: Final = select.PIPE_BUF
# The longest a line waits in a batch while the loop stays busy. Chosen
# without measuring: well inside any log shipper's own batching delay.
MAX_DELAY_S: Final = 0.05


class AuditWriter:
    """Batches lines for the file descriptor ``fd`` (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._size = 0
        self._oldest = 0.0  # time.monotonic() of the first line in the batch
        self._batching = False  # while the instrument is installed
        self._failed = False

    def write(self, line: str) -> None:
        """Queue ``line`` (ending in a newline) for writing."""
        size = len(line)  # bytes as well: the lines are ASCII JSON (ensure_ascii)
        if self._size + size > PIPE_BUF:
            self.flush()
        if not self._lines:
            self._oldest = time.monotonic()
        self._lines.append(line)
        self._size += size
        if not self._batching:
            self.flush()

    def flush(self) -> None:
        """Write every queued line now."""
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            # One write and flush: the stream's buffer (8 KiB for stderr)
            # takes the whole batch and hands it to the kernel in one call.
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream is closed
            self._report(exc)

    def flush_if_due(self, idle: bool) -> None:
        """Flush when the loop goes idle, or when the oldest line is due."""
        if self._lines and (idle or time.monotonic() - self._oldest >= MAX_DELAY_S):
            self.flush()

    def _report(self, exc: Exception) -> None:
        # Where audit lines cannot go, log lines likely cannot either; say it
        # once through logging, whose own errors are its handler's business.
        if not self._failed:
            self._failed = True
            log.error("cannot write audit lines: %s", exc)


class _FlushBeforeWaiting(trio.abc.Instrument):
    """Flushes the writer before the event loop waits (see the module)."""

    def __init__(self, writer: AuditWriter) -> None:
        self._writer = writer

    def before_io_wait(self, timeout: float) -> None:
        # ``timeout`` is 0 while tasks are ready to run: the loop only polls.
        self._writer.flush_if_due(idle=timeout > 0)


@contextmanager
def batching(writer: AuditWriter) -> Iterator[None]:
    """Batch ``writer``'s lines while the block runs, inside a Trio run;
    everything queued is written on the way out."""
    instrument = _FlushBeforeWaiting(writer)
    trio.lowlevel.add_instrument(instrument)
    writer._batching = True
    try:
        yield
    finally:
        writer._batching = False
        # Trio drops an instrument that raised; then it is gone already.
        with suppress(KeyError):
            trio.lowlevel.remove_instrument(instrument)
        writer.flush()
