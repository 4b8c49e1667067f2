"""Injected misbehaviour, switched on from the admin console.

The sidecar must survive a slow, flaky or absent HSM; these switches let a
test or an operator produce each case on demand. The host-protocol server
reads them on every connection and every command, so a change takes effect at
once, with no restart:

* ``latency_ms``: every reply is delayed by this much;
* ``error_rate``: this fraction of commands is answered INJECTED_FAULT (90)
  without being run;
* ``drop_rate``: this fraction of commands runs but gets no reply, as when a
  reply is lost in the network;
* ``refuse_connections``: new connections are closed at once, before TLS;
* ``outage``: new connections are refused and open ones are closed, without
  replying to anything in flight.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

# A fault that delays for minutes is a hang, not latency; the cap keeps a typo
# from wedging a test run. Chosen, not measured.
MAX_LATENCY_MS = 60_000


@dataclass
class Faults:
    """The current fault settings; all off by default."""

    latency_ms: int = 0
    error_rate: float = 0.0
    refuse_connections: bool = False
    drop_rate: float = 0.0
    outage: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def clear(self) -> None:
        """Switch every fault off."""
        for item in fields(self):
            setattr(self, item.name, item.default)

    def describe(self) -> dict[str, object]:
        """The settings by name, for display and logs."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def update(self, **changes: object) -> None:
        """Set several faults at once; ValueError, and nothing changed, if a
        name is unknown or a value out of range."""
        before = self.describe()
        unknown = sorted(set(changes) - set(before))
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]}; known: {', '.join(before)}")
        for name, value in changes.items():
            setattr(self, name, value)
        try:
            self.validate()
        except (TypeError, ValueError):
            for name, value in before.items():
                setattr(self, name, value)
            raise

    def validate(self) -> None:
        """ValueError (TypeError for a wrong type) naming the first bad setting."""
        if not isinstance(self.latency_ms, int) or isinstance(self.latency_ms, bool):
            raise TypeError("latency_ms must be a whole number of milliseconds")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be 0 to {MAX_LATENCY_MS}")
        for name in ("error_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0.0 and 1.0")

    def inject_error(self) -> bool:
        """Whether the command now being handled should get INJECTED_FAULT."""
        return _happens(self.error_rate)

    def drop_reply(self) -> bool:
        """Whether the reply now being sent should be lost."""
        return _happens(self.drop_rate)


def _happens(rate: float) -> bool:
    if rate <= 0.0:
        return False
    # Picks which replies to disturb, not a secret, so a plain PRNG will do.
    return rate >= 1.0 or random.random() < rate  # noqa: S311
