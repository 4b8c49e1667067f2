"""Does the proxy hold KMS's load? Checks and the verdict they add up to.

Required checks (all must pass for PASS):

* ``throughput``: ok answers per second of timetable at least
  ``target_rate * (1 - max_error_rate)``. KMS's default quota for one
  external key store is 1,800 requests per second.
* ``latency``: p99 at most ``latency_budget_ms`` (default 250 ms: KMS fails
  any call not answered within 250 ms; spec, Encrypt, "KMS Considerations").
* ``failures``: requests not ok (errors, invalid answers, timeouts,
  transport errors) plus those dropped by the client, as a fraction of all
  scheduled, at most ``max_error_rate``.

Informational: ``tight_latency`` (p99 against 50 ms by default: the room a
proxy leaves for the network between KMS and it) and ``load_generator``
(the tool kept its timetable: dispatch lag p99 under 10 ms and less than
95 % of a core busy). Latency is measured from the scheduled time, so a
lagging tool can only make the proxy look *slower*: a PASS stays a PASS,
and a FAIL while the tool lagged is INCONCLUSIVE, unless the proxy's own
answers (errors, invalid responses) or broken connections already fail it.
"""

from __future__ import annotations

from dataclasses import dataclass

# How late the timetable may hand requests on before the tool, not the
# proxy, is suspect; and how busy its core may be. Chosen without measuring.
MAX_DISPATCH_LAG_MS = 10.0
MAX_CPU_UTILISATION = 0.95


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    required: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "required": self.required,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Figures:
    """The numbers the checks judge."""

    target_rate: float
    ok_per_s: float
    p99_ms: float
    failed_fraction: float  # not ok or dropped, of all scheduled
    answer_failed_fraction: float  # errors, invalid answers, transport errors
    dispatch_lag_p99_ms: float
    cpu_utilisation: float


@dataclass(frozen=True, slots=True)
class Limits:
    latency_budget_ms: float
    tight_budget_ms: float
    max_error_rate: float


def judge(figures: Figures, limits: Limits) -> tuple[str, list[Check]]:
    """The status (PASS, FAIL or INCONCLUSIVE) and every check."""
    checks = [
        _throughput(figures, limits),
        _latency("latency", figures.p99_ms, limits.latency_budget_ms, True),
        _failures(figures, limits),
        _latency("tight_latency", figures.p99_ms, limits.tight_budget_ms, False),
        _load_generator(figures),
    ]
    if all(check.passed for check in checks if check.required):
        return "PASS", checks
    tool_lagged = not checks[-1].passed
    if tool_lagged and figures.answer_failed_fraction <= limits.max_error_rate:
        return "INCONCLUSIVE", checks  # slowness alone failed it: whose?
    return "FAIL", checks


def _throughput(figures: Figures, limits: Limits) -> Check:
    needed = figures.target_rate * (1 - limits.max_error_rate)
    return Check(
        "throughput",
        figures.ok_per_s >= needed,
        True,
        f"{figures.ok_per_s:.1f} ok/s, need {needed:.1f} "
        f"(target {figures.target_rate:g}/s)",
    )


def _latency(name: str, p99_ms: float, budget_ms: float, required: bool) -> Check:
    return Check(
        name,
        p99_ms <= budget_ms,
        required,
        f"p99 {p99_ms:.1f} ms, budget {budget_ms:g} ms",
    )


def _failures(figures: Figures, limits: Limits) -> Check:
    return Check(
        "failures",
        figures.failed_fraction <= limits.max_error_rate,
        True,
        f"{figures.failed_fraction:.4%} not ok, allowed {limits.max_error_rate:.4%}",
    )


def _load_generator(figures: Figures) -> Check:
    kept_up = (
        figures.dispatch_lag_p99_ms <= MAX_DISPATCH_LAG_MS
        and figures.cpu_utilisation < MAX_CPU_UTILISATION
    )
    return Check(
        "load_generator",
        kept_up,
        False,
        f"dispatch lag p99 {figures.dispatch_lag_p99_ms:.1f} ms "
        f"(max {MAX_DISPATCH_LAG_MS:g}), CPU {figures.cpu_utilisation:.0%} "
        f"of a core (max {MAX_CPU_UTILISATION:.0%})",
    )
