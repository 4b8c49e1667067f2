"""``make bench`` works: a short run of the whole stack reports sane figures.

The smoke mode (3 s at 50 requests/s) starts the real simulator and sidecar
and the real load tool, as the full benchmark does. Nothing here asserts a
timing: the figures depend on the machine (docs/performance.md has them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.proc_cpu import CpuSample, CpuTimes, descendants, sample_tree

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 180  # PKI, two services and the load tool, on a slow CI box


@pytest.mark.slow
def test_smoke_run_reports_rate_latency_failures_and_cpu_per_request(
    tmp_path: Path,
) -> None:
    out = tmp_path / "report.json"
    command = [sys.executable, "-m", "tests.bench.stack_bench", "--smoke"]
    done = subprocess.run(
        [*command, "--quiet", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )

    assert done.returncode in (0, 1, 3), done.stdout + done.stderr  # it ran
    report = json.loads(out.read_text())
    assert report["format"] == "stack-bench-report/1"
    assert report["settings"]["rate"] == 50
    assert report["rates_per_s"]["completed"] > 0
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["failures"]["total"] >= 0
    window = report["window"]
    assert window["requests"] > 0
    assert window["cpu_us_per_request"]["sidecar"] > 0
    assert window["cpu_us_per_request"]["simulator"] > 0
    assert set(window["cpu_us_per_request"]) == {"sidecar", "simulator", "load_tool"}
    assert "stack bench: 50/s" in done.stdout


def test_a_process_that_started_in_the_window_counts_whole() -> None:
    before = CpuSample({1: CpuTimes(1.0, 0.5)})
    after = CpuSample({1: CpuTimes(1.5, 0.5), 2: CpuTimes(0.2, 0.1)})

    spent = after.since(before)

    assert spent.user_s == pytest.approx(0.7)
    assert spent.system_s == pytest.approx(0.1)


def test_the_tree_of_a_process_includes_its_children() -> None:
    command = [sys.executable, "-c", "input()"]
    with subprocess.Popen(command, stdin=subprocess.PIPE) as child:
        try:
            assert child.pid in descendants(os.getpid())
            assert child.pid in sample_tree(os.getpid()).by_pid
        finally:
            child.communicate(b"\n")
