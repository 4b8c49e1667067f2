"""The report's JSON shape, and the verdict it reaches."""

from __future__ import annotations

import json

import pytest

from fixtures.pki import Pki
from sidecar.bench.outcome import LATE, OK, Kind, Outcome
from sidecar.bench.payloads import Operation
from sidecar.bench.recorder import Recorder
from sidecar.bench.report import REPORT_FORMAT, RunFacts, build_report
from sidecar.bench.report_text import render
from sidecar.bench.verdict import Figures, Limits, judge
from sidecar.bench.warmup import WarmupResult
from tests.bench_tool.fake_proxy import SECRET
from tests.bench_tool.helpers import settings_for

LATENCY_KEYS = {"count", "min", "mean", "p50", "p90", "p99", "p99_9", "max"}
GROUP_KEYS = {"total", "by_detail"}


def a_recorder() -> Recorder:
    recorder = Recorder()
    for index in range(100):
        recorder.scheduled += 1
        recorder.dispatch_lag.record(0.0001)
        recorder.queue_wait.record(0.0002)
        recorder.record(Operation.ENCRYPT, OK, 0.001 * (index + 1))
    recorder.scheduled += 3
    recorder.record(
        Operation.DECRYPT, Outcome(Kind.ERROR, "ThrottlingException"), 0.002
    )
    recorder.record(Operation.DECRYPT, LATE, 0.3)
    recorder.drop()
    return recorder


def a_report(pki: Pki) -> dict[str, object]:
    settings = settings_for(443, pki, rate=103.0, duration=1.0, target_rate=100.0)
    facts = RunFacts(timetable_s=1.0, elapsed_s=1.3, cpu_s=0.2)
    return build_report(settings, a_recorder(), facts, WarmupResult())


def test_the_json_report_has_the_documented_shape(pki: Pki) -> None:
    report = json.loads(json.dumps(a_report(pki)))

    assert report["format"] == REPORT_FORMAT
    assert report["status"] in {"PASS", "FAIL", "INCONCLUSIVE"}
    assert set(report) == {
        "format", "status", "checks", "settings", "timing", "requests",
        "rates_per_s", "latency_ms", "latency_ms_by_operation", "outcomes",
        "client", "warmup",
    }  # fmt: skip
    assert set(report["latency_ms"]) == LATENCY_KEYS
    assert set(report["latency_ms_by_operation"]) == {"decrypt", "encrypt"}
    assert set(report["rates_per_s"]) == {"target", "offered", "completed", "ok"}
    outcomes = report["outcomes"]
    for group in ("errors", "invalid_responses", "timeouts", "transport_errors"):
        assert set(outcomes[group]) == GROUP_KEYS
    assert outcomes["errors"]["by_detail"] == {"ThrottlingException": 1}
    assert outcomes["timeouts"]["by_detail"] == {LATE.detail: 1}
    assert (outcomes["ok"], outcomes["dropped_by_client"]) == (100, 1)
    assert report["requests"] == {
        "scheduled": 103,
        "completed": 102,
        "dropped_by_client": 1,
    }
    assert {"cpu_us_per_request", "queue_wait_ms", "dispatch_lag_ms"} <= set(
        report["client"]
    )
    assert {c["name"] for c in report["checks"]} == {
        "throughput", "latency", "failures", "tight_latency", "load_generator",
    }  # fmt: skip


def test_the_report_never_contains_the_secret(pki: Pki) -> None:
    report = a_report(pki)

    assert SECRET not in json.dumps(report)
    assert SECRET not in render(report)
    assert "secret" not in report["settings"]  # type: ignore[operator]


def test_latency_figures_are_milliseconds_from_the_histogram(pki: Pki) -> None:
    latency = a_report(pki)["latency_ms"]

    assert latency["count"] == 102  # type: ignore[index]
    assert latency["max"] == 300.0  # type: ignore[index]
    # Nearest rank 101 of 102 is the 100 ms sample; its bucket ends 31 us on.
    assert 100.0 <= latency["p99"] <= 100.1  # type: ignore[index]


GOOD = Figures(1800, 1800, 20.0, 0.0, 0.0, 1.0, 0.5)
LIMITS = Limits(latency_budget_ms=250, tight_budget_ms=50, max_error_rate=0.001)


@pytest.mark.parametrize(
    ("figures", "status", "failed"),
    [
        (GOOD, "PASS", set()),
        (Figures(1800, 1800, 80.0, 0.0, 0.0, 1.0, 0.5), "PASS", {"tight_latency"}),
        (
            Figures(1800, 1800, 260.0, 0.0, 0.0, 1.0, 0.5),
            "FAIL",
            {"latency", "tight_latency"},
        ),
        (Figures(1800, 1700, 20.0, 0.0, 0.0, 1.0, 0.5), "FAIL", {"throughput"}),
        (Figures(1800, 1800, 20.0, 0.01, 0.0, 1.0, 0.5), "FAIL", {"failures"}),
        (Figures(1800, 1800, 20.0, 0.0, 0.0, 50.0, 0.5), "PASS", {"load_generator"}),
        (  # slow answers while the tool itself lagged: cannot tell whose fault
            Figures(1800, 1800, 300.0, 0.0, 0.0, 50.0, 0.99),
            "INCONCLUSIVE",
            {"latency", "tight_latency", "load_generator"},
        ),
        (  # error answers are the proxy's, however late the tool was
            Figures(1800, 1700, 20.0, 0.05, 0.05, 50.0, 0.5),
            "FAIL",
            {"throughput", "failures", "load_generator"},
        ),
    ],
)
def test_verdict(figures: Figures, status: str, failed: set[str]) -> None:
    verdict, checks = judge(figures, LIMITS)

    assert verdict == status
    assert {check.name for check in checks if not check.passed} == failed
