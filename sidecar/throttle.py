"""Overload protection of one worker: an in-flight cap and keystore quotas.

Spec, "Error codes": ThrottlingException (429) is how a proxy says "the
request rate is too high", either because "it is unable to keep up or the
caller exceeded its request quota"; spec, "API operations": a proxy "MAY
implement independent request quotas on each path prefix". KMS gives every
call 250 ms. A request the proxy cannot serve in time is better refused at
once than queued until KMS gives up on it: the refusal costs microseconds,
the queued request still holds a backend slot when KMS has stopped waiting,
and it delays every request behind it past the deadline too.

Two limits, both per worker process and both optional:

* ``max_in_flight``: requests admitted and not yet answered. Past it the
  backend is the bottleneck and more concurrency only lengthens the queue.
* a token bucket per keystore (``max_requests_per_second``, ``burst``):
  the keystore's quota. With N workers each one holds a bucket of 1/N of the
  rate and the burst, since the kernel spreads connections across workers
  and no state is shared between them (docs/configuration.md).

Two checks per request. ``refuse_early``, before authentication, refuses a
request that would certainly be refused, without spending anything: under
overload most requests are refused, and a refusal that skips SigV4 and the
JSON body costs a fraction of one that does (docs/performance.md). Only
``admit``, after authentication, takes a slot and a token, so requests that
fail SigV4 can never spend a keystore's quota; a request the early check
let through can still be refused there (its token went to another).

GetHealthStatus is exempt from both: it answers from the cached deep check,
so refusing it would free nothing, and KMS reads it to decide whether the
keystore is usable at all.

This module is sans-IO: it reads no clock (the caller passes ``now``, any
monotonic seconds) and imports no event loop, so it is tested with plain
numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from sidecar.xks.errors import ThrottlingException
from sidecar.xks.routes import Operation


@dataclass(frozen=True, slots=True)
class Quota:
    """A keystore's request quota, for the whole sidecar (all workers)."""

    requests_per_second: float
    burst: float  # requests admitted at once after a quiet spell

    def __post_init__(self) -> None:
        rate = self.requests_per_second
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError("requests_per_second must be a positive number")
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError("burst must be at least 1")

    def share(self, workers: int) -> Quota:
        """One worker's part of the quota: 1/``workers`` of rate and burst.

        The burst never drops below one request, or a worker could admit
        nothing at all; so with more workers than burst the sidecar as a
        whole may admit up to ``workers`` requests at once.
        """
        if workers < 1:
            raise ValueError("workers must be at least 1")
        return Quota(self.requests_per_second / workers, max(1.0, self.burst / workers))


class TokenBucket:
    """The classic token bucket: ``rate`` tokens a second, at most ``capacity``.

    Starts full. Over any interval of length T it admits at most
    ``capacity + rate * T`` requests; a request refused costs nothing.
    """

    __slots__ = ("_tokens", "_updated", "capacity", "rate")

    def __init__(self, quota: Quota, now: float) -> None:
        self.rate = quota.requests_per_second
        self.capacity = quota.burst
        self._tokens = quota.burst
        self._updated = now

    def take(self, now: float) -> bool:
        """Take one token if there is one; ``now`` in seconds, never decreasing."""
        if not self.has_token(now):
            return False
        self._tokens -= 1
        return True

    def has_token(self, now: float) -> bool:
        """Whether ``take`` would succeed now; takes nothing."""
        elapsed = now - self._updated
        if elapsed > 0:  # a clock that stood still or stepped back adds nothing
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._updated = now
        return self._tokens >= 1


class _Release:
    """Context manager returned by ``Throttle.admit``: gives the slot back."""

    __slots__ = ("_throttle",)

    def __init__(self, throttle: Throttle | None) -> None:
        self._throttle = throttle  # None: the request holds no slot

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._throttle is not None:
            self._throttle.in_flight -= 1


_UNCOUNTED: Final = _Release(None)


class Throttle:
    """Admits or refuses each request of one worker, before the backend call."""

    def __init__(
        self,
        *,
        max_in_flight: int | None = None,
        quotas: Mapping[str, Quota] | None = None,
        workers: int = 1,
        now: float = 0.0,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._workers = workers
        self._quotas = dict(quotas or {})
        self._buckets = {
            name: TokenBucket(quota.share(workers), now)
            for name, quota in self._quotas.items()
        }
        # The refusal reasons, built once: under overload most requests get one.
        self._quota_reasons = {name: self._quota_reason(name) for name in self._quotas}
        self._in_flight_reason = (
            f"throttled: {max_in_flight} requests in flight in this worker,"
            f" [server] max_in_flight = {max_in_flight}"
        )
        self._held = _Release(self)

    def refuse_early(self, keystore: str, operation: Operation, now: float) -> None:
        """ThrottlingException if ``admit`` would surely refuse this request
        now; spends nothing (see the module docstring)."""
        if operation is not Operation.GET_HEALTH_STATUS:
            self._check(keystore, now, take=False)

    def admit(self, keystore: str, operation: Operation, now: float) -> _Release:
        """A context manager holding the request's slot, or ThrottlingException.

        The in-flight cap is checked before the quota so that a request
        refused for concurrency does not spend a token of the keystore's.
        ``reason`` (for the log line only) names the limit that refused.
        """
        if operation is Operation.GET_HEALTH_STATUS:
            return _UNCOUNTED
        self._check(keystore, now, take=True)
        self.in_flight += 1
        return self._held

    def _check(self, keystore: str, now: float, *, take: bool) -> None:
        limit = self.max_in_flight
        if limit is not None and self.in_flight >= limit:
            raise ThrottlingException(reason=self._in_flight_reason)
        bucket = self._buckets.get(keystore)
        if bucket is not None and not (
            bucket.take(now) if take else bucket.has_token(now)
        ):
            raise ThrottlingException(reason=self._quota_reasons[keystore])

    def _quota_reason(self, keystore: str) -> str:
        rate = self._quotas[keystore].requests_per_second
        per_worker = self._buckets[keystore].rate
        return (
            f"throttled: keystore {keystore!r} over max_requests_per_second"
            f" = {rate:g} ({per_worker:g}/s in each of {self._workers} workers)"
        )
