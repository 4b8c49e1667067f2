"""The end-of-run report: one dictionary, printed as text or written as JSON.

The JSON document (``--json PATH``) and the text say the same; the JSON
shape, with ``format`` naming its version:

    format, status ("PASS" | "FAIL" | "INCONCLUSIVE"), checks [...],
    settings {...}          the run's settings, without the secret
    timing {timetable_s, elapsed_s}
    requests {scheduled, completed, dropped_by_client}
    rates_per_s {target, offered, completed, ok}
    latency_ms {count, min, mean, p50, p90, p99, p99_9, max}
    latency_ms_by_operation {operation: {... as latency_ms}}
    outcomes {ok, errors, invalid_responses, timeouts, transport_errors
              (each {total, by_detail {name or reason: count}}),
              dropped_by_client}
    client {cpu_s, cpu_us_per_request, cpu_utilisation, connections,
            connections_opened_during_run, max_outstanding,
            queue_wait_ms {...}, dispatch_lag_ms {...}}
    warmup {encrypts_sent, ciphertexts, failures, connection_failures}

Latencies are milliseconds from each request's scheduled send time (see
``scheduler``); percentiles are nearest-rank, from ``histogram`` (never
understated, overstated by less than 0.1 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.bench.histogram import LatencyHistogram
from sidecar.bench.mix import format_mix
from sidecar.bench.outcome import Kind
from sidecar.bench.recorder import Recorder
from sidecar.bench.settings import BenchSettings
from sidecar.bench.verdict import Figures, Limits, judge
from sidecar.bench.warmup import WarmupResult

REPORT_FORMAT = "xks-bench-report/1"
_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


@dataclass(frozen=True, slots=True)
class RunFacts:
    timetable_s: float  # scheduled requests / rate: the span judged
    elapsed_s: float  # timetable plus waiting for the last answers
    cpu_s: float  # this process's CPU time over the same span


def build_report(
    settings: BenchSettings, recorder: Recorder, facts: RunFacts, warmup: WarmupResult
) -> dict[str, Any]:
    ok = recorder.count(Kind.OK)
    dropped = recorder.count(Kind.DROPPED)
    scheduled = max(recorder.scheduled, 1)
    figures = Figures(
        target_rate=settings.target_rate,
        ok_per_s=ok / facts.timetable_s if facts.timetable_s else 0.0,
        p99_ms=recorder.latency.percentile_us(99) / 1000,
        failed_fraction=(recorder.not_ok + dropped) / scheduled,
        answer_failed_fraction=_answer_failures(recorder) / scheduled,
        dispatch_lag_p99_ms=recorder.dispatch_lag.percentile_us(99) / 1000,
        cpu_utilisation=facts.cpu_s / facts.elapsed_s if facts.elapsed_s else 0.0,
    )
    limits = Limits(
        settings.latency_budget_ms, settings.tight_budget_ms, settings.max_error_rate
    )
    status, checks = judge(figures, limits)
    return {
        "format": REPORT_FORMAT,
        "status": status,
        "checks": [check.to_json() for check in checks],
        "settings": settings_json(settings),
        "timing": {"timetable_s": facts.timetable_s, "elapsed_s": facts.elapsed_s},
        "requests": {
            "scheduled": recorder.scheduled,
            "completed": recorder.completed,
            "dropped_by_client": dropped,
        },
        "rates_per_s": _rates(settings, recorder, facts, ok),
        "latency_ms": latency_json(recorder.latency),
        "latency_ms_by_operation": {
            op.value: latency_json(h) for op, h in sorted(recorder.by_operation.items())
        },
        "outcomes": outcomes_json(recorder),
        "client": _client(settings, recorder, facts, figures.cpu_utilisation),
        "warmup": _warmup(warmup),
    }


def _answer_failures(recorder: Recorder) -> int:
    kinds = (Kind.ERROR, Kind.INVALID, Kind.TRANSPORT)
    return sum(recorder.count(kind) for kind in kinds)


def latency_json(histogram: LatencyHistogram) -> dict[str, int | float]:
    figures: dict[str, int | float] = {"count": histogram.count}
    figures["min"] = histogram.min_us / 1000
    figures["mean"] = round(histogram.mean_us() / 1000, 3)
    for name, percent in _PERCENTILES:
        figures[name] = histogram.percentile_us(percent) / 1000
    figures["max"] = histogram.max_us / 1000
    return figures


def outcomes_json(recorder: Recorder) -> dict[str, Any]:
    def group(kind: Kind) -> dict[str, Any]:
        return {"total": recorder.count(kind), "by_detail": recorder.details(kind)}

    return {
        "ok": recorder.count(Kind.OK),
        "errors": group(Kind.ERROR),
        "invalid_responses": group(Kind.INVALID),
        "timeouts": group(Kind.TIMEOUT),
        "transport_errors": group(Kind.TRANSPORT),
        "dropped_by_client": recorder.count(Kind.DROPPED),
    }


def settings_json(settings: BenchSettings) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for name, value in vars(settings).items():
        if name == "secret":
            continue  # never shown; the access key id identifies the credential
        if name == "mix":
            value = format_mix(value)
        shown[name] = (
            None if value is None else (value if _plain(value) else str(value))
        )
    return shown


def _plain(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _rates(
    settings: BenchSettings, recorder: Recorder, facts: RunFacts, ok: int
) -> dict[str, float]:
    span = facts.timetable_s or 1.0
    return {
        "target": settings.target_rate,
        "offered": round(recorder.scheduled / span, 2),
        "completed": round(recorder.completed / span, 2),
        "ok": round(ok / span, 2),
    }


def _client(
    settings: BenchSettings, recorder: Recorder, facts: RunFacts, utilisation: float
) -> dict[str, Any]:
    sent = max(recorder.completed, 1)
    return {
        "cpu_s": round(facts.cpu_s, 3),
        "cpu_us_per_request": round(facts.cpu_s / sent * 1e6, 1),
        "cpu_utilisation": round(utilisation, 3),
        "connections": settings.connections,
        "connections_opened_during_run": recorder.connections_opened,
        "max_outstanding": settings.max_outstanding,
        "queue_wait_ms": latency_json(recorder.queue_wait),
        "dispatch_lag_ms": latency_json(recorder.dispatch_lag),
    }


def _warmup(warmup: WarmupResult) -> dict[str, Any]:
    failures = {f"{o.kind.value}: {o.detail}" if o.detail else o.kind.value: n
                for o, n in warmup.failures.most_common()}  # fmt: skip
    return {
        "encrypts_sent": warmup.sent,
        "ciphertexts": len(warmup.decrypts),
        "failures": failures,
        "connection_failures": dict(warmup.connection_failures),
    }
