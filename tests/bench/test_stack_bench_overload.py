"""``make bench``'s overload knobs and verdict (no stack started here)."""

from __future__ import annotations

import argparse
import tomllib
from typing import Any

from tests.bench.bench_stack import Tuning, _tuned
from tests.bench.stack_bench import _overload

_CONFIG = """[server]
port = 0

[[keystore]]
name = "dev"
uri_path = "/dev/kms/xks/v1"

[[keystore]]
name = "tenant-b"
uri_path = "/tenant-b/kms/xks/v1"
"""


def _load(errors: dict[str, int], p99: float, timeouts: int = 0) -> dict[str, Any]:
    def kind(total: int) -> dict[str, Any]:
        return {"total": total, "by_detail": {}}

    return {
        "outcomes": {
            "errors": {"total": sum(errors.values()), "by_detail": errors},
            "invalid_responses": kind(0),
            "timeouts": kind(timeouts),
            "transport_errors": kind(0),
            "dropped_by_client": 0,
        },
        "latency_ms": {"p99": p99},
    }


def _args(quota: int | None = 900) -> argparse.Namespace:
    return argparse.Namespace(quota=quota, max_in_flight=None)


def test_tuning_sets_workers_in_flight_cap_and_the_dev_keystore_quota() -> None:
    config = tomllib.loads(_tuned(_CONFIG, Tuning(2, 900, 64)))

    assert config["server"] == {"port": 0, "workers": 2, "max_in_flight": 64}
    dev, tenant_b = config["keystore"]
    assert dev["max_requests_per_second"] == 900
    assert "max_requests_per_second" not in tenant_b


def test_no_tuning_leaves_the_configuration_as_it_was() -> None:
    assert _tuned(_CONFIG, Tuning()) == _CONFIG


def test_overload_passes_when_the_excess_is_throttled_fast() -> None:
    verdict = _overload(_args(), _load({"ThrottlingException": 500}, p99=40.0))

    assert verdict is not None
    assert verdict["verdict"] == "PASS"
    assert verdict["throttled"] == 500


def test_overload_fails_on_a_timeout_a_slow_tail_or_no_throttling() -> None:
    timed_out = _load({"ThrottlingException": 5}, p99=40.0, timeouts=1)
    slow = _load({"ThrottlingException": 5}, p99=260.0)
    unthrottled = _load({}, p99=40.0)
    other = _load({"ThrottlingException": 5, "InternalException": 1}, p99=40.0)

    for load in (timed_out, slow, unthrottled, other):
        verdict = _overload(_args(), load)
        assert verdict is not None
        assert verdict["verdict"] == "FAIL"


def test_no_overload_verdict_without_an_overload_knob() -> None:
    assert _overload(_args(quota=None), _load({}, p99=1.0)) is None
