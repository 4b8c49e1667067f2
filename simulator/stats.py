"""Counters the host-protocol server keeps and the admin console shows.

Everything runs on the simulator's one Trio thread, so plain integers do; no
locks. Latency is kept as a running sum and maximum per command, which is all
the console shows; percentiles would need a histogram (TODO: add one if the
console ever needs p99; today it costs nothing to leave out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from simulator.hostproto.codec import ErrorCode

# Read once: reading a member of an enum class costs about 0.24 us.
_OK = ErrorCode.OK


@dataclass
class _CommandStats:
    count: int = 0
    errors: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0

    def add(self, code: ErrorCode, seconds: float) -> None:
        self.count += 1
        self.errors += code is not _OK
        self.total_seconds += seconds
        if seconds > self.max_seconds:
            self.max_seconds = seconds

    def as_dict(self) -> dict[str, object]:
        mean = self.total_seconds / self.count if self.count else 0.0
        return {
            "count": self.count,
            "errors": self.errors,
            "mean_latency_ms": round(mean * 1000, 3),
            "max_latency_ms": round(self.max_seconds * 1000, 3),
        }


class Stats:
    """Per-command counts and latencies, and connection counts, since start."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._open = 0
        self._total = 0
        self._commands: dict[str, _CommandStats] = {}

    def record(self, command: str, code: ErrorCode, seconds: float) -> None:
        """One answered (or deliberately unanswered) command.

        ``command`` should come from a closed set (the server passes unknown
        names as one bucket) so a client cannot grow this table at will.
        """
        # Not ``setdefault``, which would build a _CommandStats every call.
        entry = self._commands.get(command)
        if entry is None:
            entry = self._commands[command] = _CommandStats()
        entry.add(code, seconds)

    def connection_opened(self) -> None:
        self._open += 1
        self._total += 1

    def connection_closed(self) -> None:
        self._open -= 1

    def reset(self) -> None:
        """Forget every command count; connection counts and uptime stay."""
        self._commands.clear()

    def snapshot(self) -> dict[str, object]:
        """Uptime, connection counts and per-command figures, as plain data."""
        return {
            "uptime_s": round(time.monotonic() - self._started, 3),
            "connections_open": self._open,
            "connections_total": self._total,
            "commands": {
                name: entry.as_dict() for name, entry in sorted(self._commands.items())
            },
        }
