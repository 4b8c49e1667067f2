"""A short-lived cache of key descriptions, with one fetch per key at a time.

Why a cache: the XKS service calls ``describe_key`` before every Encrypt and
Decrypt, to check the key's state and usage before any cryptography
(``sidecar.backends.base``). At KMS's default 1,800 requests a second that
would double the HSM's load for answers that almost never change. A stale
answer is harmless for safety: the HSM checks state and usage again on the
operation itself, so a key disabled a moment ago is refused by GCEN/GCDE
even while the cache still says ENABLED. The TTL (default 1 s) bounds how
long GetKeyMetadata can report the old state.

Why single-flight: when an entry expires under load, every request arriving
in the next round trip would otherwise send its own KINF. Instead the first
one fetches and the rest wait for its answer, success or XKS error alike.
Errors are shared with the waiters but never cached: the next caller asks
again. If the fetching caller is cancelled, its waiters start a fetch of
their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import trio

from sidecar.backends.base import KeyDescription
from sidecar.xks.errors import XksError

Fetch = Callable[[str], Awaitable[KeyDescription]]

# Past this many entries, expired ones are swept on insert, so key ids that
# are asked for once cannot grow the cache without bound. Chosen, not measured.
_SWEEP_ABOVE: Final = 4096


class _Flight:
    """A fetch in progress and, once done, its outcome."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: KeyDescription | None = None
        self.error: XksError | None = None


class DescribeCache:
    def __init__(self, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._fresh: dict[str, tuple[float, KeyDescription]] = {}
        self._flights: dict[str, _Flight] = {}

    async def get(self, key_id: str, fetch: Fetch) -> KeyDescription:
        """The cached description of ``key_id``, or ``fetch(key_id)``'s."""
        while True:
            entry = self._fresh.get(key_id)
            if entry is not None and trio.current_time() < entry[0]:
                return entry[1]
            flight = self._flights.get(key_id)
            if flight is None:
                return await self._fetch(key_id, fetch)

            await flight.done.wait()
            if flight.result is not None:
                return flight.result
            if flight.error is not None:
                # A fresh exception per waiter: one object raised in several
                # tasks would have its traceback rewritten by each.
                error = flight.error
                raise type(error)(error.message, reason=error.reason) from error
            # The fetching caller was cancelled: try again, maybe as fetcher.

    async def _fetch(self, key_id: str, fetch: Fetch) -> KeyDescription:
        flight = _Flight()
        self._flights[key_id] = flight
        try:
            flight.result = await fetch(key_id)
        except XksError as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key_id]
            flight.done.set()
        self._store(key_id, flight.result)
        return flight.result

    def _store(self, key_id: str, description: KeyDescription) -> None:
        now = trio.current_time()
        if len(self._fresh) > _SWEEP_ABOVE:
            self._fresh = {k: v for k, v in self._fresh.items() if v[0] > now}
        self._fresh[key_id] = (now + self._ttl, description)
