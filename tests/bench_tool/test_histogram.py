"""Percentiles are nearest-rank, never understated, within 0.1 per cent."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.bench.histogram import SUB_BUCKETS, LatencyHistogram


def nearest_rank(values_us: list[int], percent: float) -> int:
    ordered = sorted(values_us)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def filled(values_us: list[int]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values_us:
        histogram.record(value / 1e6)
    return histogram


def test_one_to_a_hundred_ms_gives_the_textbook_percentiles() -> None:
    histogram = filled([ms * 1000 for ms in range(1, 101)])

    assert histogram.percentile_us(50) == pytest.approx(50_000, rel=1 / SUB_BUCKETS)
    assert histogram.percentile_us(50) >= 50_000
    assert histogram.percentile_us(99) >= 99_000
    assert histogram.percentile_us(99) < 99_000 * (1 + 1 / SUB_BUCKETS)
    assert histogram.percentile_us(99.9) == 100_000  # capped at the exact max
    assert histogram.max_us == 100_000
    assert histogram.min_us == 1_000


@given(st.lists(st.integers(min_value=0, max_value=2047), min_size=1))
def test_values_below_two_milliseconds_are_exact(values: list[int]) -> None:
    histogram = filled(values)

    for percent in (1, 50, 90, 99, 99.9, 100):
        assert histogram.percentile_us(percent) == nearest_rank(values, percent)


@given(st.lists(st.integers(min_value=0, max_value=10**10), min_size=1))
def test_large_values_are_never_understated_and_at_most_a_thousandth_over(
    values: list[int],
) -> None:
    histogram = filled(values)

    for percent in (50, 90, 99, 99.9, 100):
        exact = nearest_rank(values, percent)
        reported = histogram.percentile_us(percent)
        assert exact <= reported <= exact * (1 + 1 / SUB_BUCKETS)
    assert histogram.max_us == max(values)


def test_merge_equals_recording_everything_in_one() -> None:
    first, second = [5, 900, 70_000], [3, 250_000, 12]
    merged = filled(first)
    merged.merge(filled(second))
    together = filled(first + second)

    for percent in (10, 50, 99, 100):
        assert merged.percentile_us(percent) == together.percentile_us(percent)
    assert (merged.count, merged.min_us, merged.max_us) == (6, 3, 250_000)


def test_empty_histogram_reports_zero_and_rejects_a_bad_percent() -> None:
    histogram = LatencyHistogram()

    assert histogram.percentile_us(99) == 0
    assert histogram.mean_us() == 0
    with pytest.raises(ValueError, match="percent"):
        histogram.percentile_us(0)


def test_negative_latency_counts_as_zero() -> None:
    histogram = filled([-5])

    assert histogram.percentile_us(100) == 0
