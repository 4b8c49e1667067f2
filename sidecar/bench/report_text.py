"""The report (``report.build_report``) as text for a terminal.

Same figures as the JSON, in the order an operator reads them: what was
asked, what came back, how fast, whether the tool itself kept up, and the
verdict last, where the eye lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def render(report: Mapping[str, Any]) -> str:
    lines: list[str] = []
    _settings(lines, report["settings"])
    _traffic(lines, report)
    _latency(lines, report)
    _outcomes(lines, report["outcomes"])
    _client(lines, report["client"])
    _verdict(lines, report)
    return "\n".join(lines) + "\n"


def _settings(lines: list[str], settings: Mapping[str, Any]) -> None:
    lines.append(
        f"xks-bench: {settings['endpoint']}{settings['uri_path']}"
        f"  key {settings['key_id']}  mix {settings['mix']}"
    )
    lines.append(
        f"  rate {settings['rate']:g}/s for {settings['duration']:g} s over "
        f"{settings['connections']} connections, timeout {settings['timeout_ms']:g} ms"
    )


def _traffic(lines: list[str], report: Mapping[str, Any]) -> None:
    rates, requests = report["rates_per_s"], report["requests"]
    lines.append("")
    lines.append(
        f"requests   scheduled {requests['scheduled']}  completed "
        f"{requests['completed']}  dropped by client {requests['dropped_by_client']}"
    )
    lines.append(
        f"rate/s     offered {rates['offered']:.1f}  completed "
        f"{rates['completed']:.1f}  ok {rates['ok']:.1f}  (target {rates['target']:g})"
    )


def _latency(lines: list[str], report: Mapping[str, Any]) -> None:
    lines.append("")
    lines.append("latency ms (from scheduled send time)")
    lines.append(f"  {'':<14}" + "".join(f"{h:>9}" for h in _COLUMNS))
    lines.append(_latency_row("all", report["latency_ms"]))
    for name, figures in report["latency_ms_by_operation"].items():
        lines.append(_latency_row(name, figures))


_COLUMNS = ("count", "p50", "p90", "p99", "p99.9", "max")


def _latency_row(name: str, figures: Mapping[str, float]) -> str:
    keys = ("p50", "p90", "p99", "p99_9", "max")
    cells = f"{int(figures['count']):>9}" + "".join(f"{figures[k]:>9.2f}" for k in keys)
    return f"  {name:<14}{cells}"


def _outcomes(lines: list[str], outcomes: Mapping[str, Any]) -> None:
    lines.append("")
    lines.append(f"outcomes   ok {outcomes['ok']}")
    for key in ("errors", "invalid_responses", "timeouts", "transport_errors"):
        group = outcomes[key]
        if group["total"]:
            lines.append(f"  {key.replace('_', ' ')}: {group['total']}")
            for detail, count in group["by_detail"].items():
                lines.append(f"    {count:>8}  {detail}")
    if outcomes["dropped_by_client"]:
        lines.append(f"  dropped by client: {outcomes['dropped_by_client']}")


def _client(lines: list[str], client: Mapping[str, Any]) -> None:
    lines.append("")
    lines.append(
        f"client     CPU {client['cpu_us_per_request']:.0f} us/request, "
        f"{client['cpu_utilisation']:.0%} of a core; reconnects "
        f"{client['connections_opened_during_run']}"
    )
    wait, lag = client["queue_wait_ms"], client["dispatch_lag_ms"]
    lines.append(
        f"  waiting for a connection: p99 {wait['p99']:.2f} ms, "
        f"max {wait['max']:.2f} ms; timetable lag: p99 {lag['p99']:.2f} ms, "
        f"max {lag['max']:.2f} ms"
    )


def _verdict(lines: list[str], report: Mapping[str, Any]) -> None:
    lines.append("")
    for check in report["checks"]:
        mark = "ok  " if check["passed"] else ("FAIL" if check["required"] else "note")
        lines.append(f"  [{mark}] {check['name']:<15} {check['detail']}")
    lines.append(f"verdict: {report['status']}")
