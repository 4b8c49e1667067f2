"""Latency percentiles with a stated precision, in constant memory.

An HDR-style log-linear histogram of whole microseconds:

* values below ``2 * SUB_BUCKETS`` (2,048 us) each have their own bucket, so
  they are exact;
* above that, each power-of-two range ``[2**k, 2**(k+1))`` is cut into
  ``SUB_BUCKETS`` (1,024) equal buckets, each ``2**(k-10)`` us wide, so a
  bucket is never wider than 1/1,024 of its lower bound.

A percentile is the nearest-rank one (the smallest recorded value with at
least ``p`` per cent of the values at or below it), reported as the *upper*
bound of the bucket holding that rank, capped at the largest value recorded.
The report therefore never understates a latency, and overstates it by less
than 0.1 per cent (values under 2,048 us are exact). ``max`` and ``min``
are exact.

Why not a sorted array of every sample: exact, but 1,800 requests a second
for an hour is 6.5 million samples, and the live progress line wants the
p99 "so far" every second; recording here is O(1) and a percentile is one
pass over a few thousand counters.
"""

from __future__ import annotations

import math

SUB_BUCKETS = 1024
_SUB_BITS = SUB_BUCKETS.bit_length() - 1  # 10
_EXACT_LIMIT = 2 * SUB_BUCKETS  # 2,048 us
# 2**40 us is 12.7 days; no latency worth reporting is longer.
_MAX_BITS = 40
_LARGEST = (1 << _MAX_BITS) - 1


class LatencyHistogram:
    """Counts latencies in microseconds; answers percentiles and the max."""

    __slots__ = ("_counts", "count", "max_us", "min_us", "total_us")

    def __init__(self) -> None:
        self._counts = [0] * _bucket_count()
        self.count = 0
        self.total_us = 0
        self.max_us = 0
        self.min_us = 0

    def record(self, seconds: float) -> None:
        """Add one latency given in seconds (negative values count as 0)."""
        # Called four times per request: comparisons instead of min() and
        # max(), and the exact range's index inline (1.0 -> 0.5 us a call).
        us = round(seconds * 1e6)
        if us < 0:
            us = 0
        if us < _EXACT_LIMIT:
            self._counts[us] += 1
        else:
            self._counts[_index(us if us < _LARGEST else _LARGEST)] += 1
        if us < self.min_us or self.count == 0:
            self.min_us = us
        if us > self.max_us:
            self.max_us = us
        self.count += 1
        self.total_us += us

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value ``other`` recorded."""
        if other.count == 0:
            return
        for index, value in enumerate(other._counts):
            if value:
                self._counts[index] += value
        self.min_us = (
            other.min_us if self.count == 0 else min(self.min_us, other.min_us)
        )
        self.max_us = max(self.max_us, other.max_us)
        self.count += other.count
        self.total_us += other.total_us

    def percentile_us(self, percent: float) -> int:
        """The nearest-rank ``percent`` percentile in us (0 when empty)."""
        if not 0 < percent <= 100:
            raise ValueError("percent must be in (0, 100]")
        if self.count == 0:
            return 0
        rank = max(1, math.ceil(percent / 100 * self.count))
        seen = 0
        counts = self._counts
        # Buckets past the maximum's are empty; stopping there keeps a live
        # p99 of millisecond latencies to a few thousand steps.
        for index in range(_index(min(self.max_us, _LARGEST))):
            seen += counts[index]
            if seen >= rank:
                return min(_upper_bound(index), self.max_us)
        return self.max_us  # the rank falls in the maximum's own bucket

    def mean_us(self) -> float:
        return self.total_us / self.count if self.count else 0.0


def _bucket_count() -> int:
    return _EXACT_LIMIT + (_MAX_BITS - _SUB_BITS - 1) * SUB_BUCKETS


def _index(us: int) -> int:
    if us < _EXACT_LIMIT:
        return us
    shift = us.bit_length() - _SUB_BITS - 1  # >= 1 here
    # (us >> shift) lies in [SUB_BUCKETS, 2 * SUB_BUCKETS).
    return _EXACT_LIMIT + (shift - 1) * SUB_BUCKETS + (us >> shift) - SUB_BUCKETS


def _upper_bound(index: int) -> int:
    if index < _EXACT_LIMIT:
        return index
    shift, sub = divmod(index - _EXACT_LIMIT, SUB_BUCKETS)
    shift += 1
    return ((sub + SUB_BUCKETS + 1) << shift) - 1
