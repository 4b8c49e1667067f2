"""The sans-IO limiter: token buckets, the in-flight cap, the health exemption."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.throttle import Quota, Throttle, TokenBucket
from sidecar.xks.errors import ThrottlingException
from sidecar.xks.routes import Operation

ENCRYPT = Operation.ENCRYPT
HEALTH = Operation.GET_HEALTH_STATUS

rates = st.floats(min_value=0.1, max_value=1000, allow_nan=False)
bursts = st.integers(min_value=1, max_value=50)
# Gaps between requests, in seconds; many zeros make bursts.
gaps = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0, max_value=2)), max_size=200
)


def times_from(start: float, steps: list[float]) -> list[float]:
    times, now = [], start
    for step in steps:
        now += step
        times.append(now)
    return times


@given(rate=rates, burst=bursts, steps=gaps)
def test_a_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[float]
) -> None:
    bucket = TokenBucket(Quota(rate, burst), now=0.0)
    admitted = [t for t in times_from(0.0, steps) if bucket.take(t)]

    # Every window [first, last] of admitted requests fits the bound
    # (a tiny slack for floating point).
    for i, first in enumerate(admitted):
        for j in range(i, len(admitted)):
            count = j - i + 1
            assert count <= burst + rate * (admitted[j] - first) + 1e-6


@given(rate=rates, burst=bursts, steps=gaps)
def test_a_bucket_admits_a_request_once_a_token_has_refilled(
    rate: float, burst: int, steps: list[float]
) -> None:
    bucket = TokenBucket(Quota(rate, burst), now=0.0)
    times = times_from(0.0, steps)
    for t in times:
        bucket.take(t)
    later = (times[-1] if times else 0.0) + 1.0 / rate * 1.001

    assert bucket.take(later)


@given(burst=bursts)
def test_a_full_bucket_admits_its_burst_at_once_then_refuses(burst: int) -> None:
    bucket = TokenBucket(Quota(1.0, burst), now=5.0)

    outcomes = [bucket.take(5.0) for _ in range(burst + 3)]

    assert outcomes == [True] * burst + [False] * 3


def test_a_clock_stepping_back_adds_no_tokens() -> None:
    bucket = TokenBucket(Quota(1.0, 1), now=100.0)
    assert bucket.take(100.0)

    assert not bucket.take(50.0)
    assert not bucket.take(100.5)
    assert bucket.take(101.0)


@given(workers=st.integers(min_value=1, max_value=64), rate=rates, burst=bursts)
def test_workers_share_the_rate_and_each_keeps_a_burst_of_at_least_one(
    workers: int, rate: float, burst: int
) -> None:
    share = Quota(rate, burst).share(workers)

    assert math.isclose(share.requests_per_second * workers, rate)
    assert share.burst == max(1.0, burst / workers)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5), (math.inf, 1)])
def test_a_quota_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match=r"requests_per_second|burst"):
        Quota(rate, burst)


def test_past_max_in_flight_a_request_is_refused_until_one_finishes() -> None:
    throttle = Throttle(max_in_flight=2)
    first = throttle.admit("dev", ENCRYPT, 0.0)
    throttle.admit("dev", ENCRYPT, 0.0)

    with pytest.raises(ThrottlingException) as refused:
        throttle.admit("dev", ENCRYPT, 0.0)
    with first:
        pass  # the first request finishes
    throttle.admit("dev", ENCRYPT, 0.0)

    assert refused.value.status == 429
    assert "max_in_flight = 2" in str(refused.value.reason)
    assert throttle.in_flight == 2


def test_a_slot_is_given_back_when_the_request_fails() -> None:
    throttle = Throttle(max_in_flight=1)

    with pytest.raises(RuntimeError), throttle.admit("dev", ENCRYPT, 0.0):
        raise RuntimeError("backend failed")

    assert throttle.in_flight == 0


def test_each_keystore_spends_only_its_own_quota() -> None:
    throttle = Throttle(quotas={"a": Quota(1, 1), "b": Quota(1, 1)})
    throttle.admit("a", ENCRYPT, 0.0)

    with pytest.raises(ThrottlingException) as refused:
        throttle.admit("a", ENCRYPT, 0.0)
    throttle.admit("b", ENCRYPT, 0.0)
    throttle.admit("unlimited", ENCRYPT, 0.0)

    assert "keystore 'a' over max_requests_per_second = 1" in str(refused.value.reason)


def test_health_is_exempt_from_quota_and_in_flight_cap() -> None:
    throttle = Throttle(max_in_flight=1, quotas={"dev": Quota(1, 1)})
    throttle.admit("dev", ENCRYPT, 0.0)  # the only slot, the only token

    for _ in range(5):
        with throttle.admit("dev", HEALTH, 0.0):
            pass

    assert throttle.in_flight == 1


def test_a_request_refused_for_concurrency_spends_no_token() -> None:
    throttle = Throttle(max_in_flight=1, quotas={"dev": Quota(1, 2)})
    held = throttle.admit("dev", ENCRYPT, 0.0)  # token 1 of 2

    with pytest.raises(ThrottlingException):
        throttle.admit("dev", ENCRYPT, 0.0)
    with held:
        pass

    throttle.admit("dev", ENCRYPT, 0.0)  # token 2 is still there


def test_the_early_check_refuses_what_admit_would_and_spends_nothing() -> None:
    throttle = Throttle(max_in_flight=2, quotas={"dev": Quota(1, 2)})

    for _ in range(5):
        throttle.refuse_early("dev", ENCRYPT, 0.0)  # checks, takes nothing
    held = throttle.admit("dev", ENCRYPT, 0.0)
    throttle.admit("dev", ENCRYPT, 0.0)  # both tokens, both slots taken

    with pytest.raises(ThrottlingException) as full:
        throttle.refuse_early("dev", ENCRYPT, 0.0)
    with held:
        pass
    with pytest.raises(ThrottlingException) as empty:
        throttle.refuse_early("dev", ENCRYPT, 0.0)
    throttle.refuse_early("dev", HEALTH, 0.0)  # health is never refused
    throttle.refuse_early("dev", ENCRYPT, 1.0)  # a second later: a token again

    assert "max_in_flight = 2" in str(full.value.reason)
    assert "over max_requests_per_second" in str(empty.value.reason)
    assert throttle.in_flight == 1


def test_with_several_workers_each_admits_its_share_of_the_burst() -> None:
    throttle = Throttle(quotas={"dev": Quota(10, 10)}, workers=2)

    admitted = 0
    for _ in range(10):
        try:
            throttle.admit("dev", ENCRYPT, 0.0)
        except ThrottlingException as exc:
            reason = exc.reason
        else:
            admitted += 1

    assert admitted == 5
    assert "5/s in each of 2 workers" in str(reason)
