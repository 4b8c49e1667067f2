"""``python -m sidecar.bench`` end to end: a short run against the fake proxy.

The tool runs as a subprocess, the way an operator runs it, against the
fake proxy in this process over real mutual TLS. Nothing here asserts a
timing: only that the run completes, counts every request, reports what
it promises, and never shows the secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from fixtures.pki import Pki
from tests.bench_tool.conftest import RunningProxy
from tests.bench_tool.fake_proxy import ACCESS_KEY_ID, KEY_ID, SECRET, URI_PATH


def bench_argv(proxy: RunningProxy, pki: Pki, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "sidecar.bench",
        "--endpoint", proxy.endpoint,
        "--uri-path", URI_PATH,
        "--key-id", KEY_ID,
        "--access-key-id", ACCESS_KEY_ID,
        "--ca-file", str(pki.public_root_cert),
        "--client-cert", str(pki.kms_client_chain),
        "--client-key", str(pki.kms_client_key),
        *extra,
    ]  # fmt: skip


async def run_bench_process(
    argv: list[str], tmp_path: Path
) -> subprocess.CompletedProcess[bytes]:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    with trio.fail_after(60):
        return await trio.run_process(
            [*argv, "--secret-file", str(secret_file)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_a_two_second_run_passes_and_writes_its_json_report(
    fake_proxy: RunningProxy, pki: Pki, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    argv = bench_argv(
        fake_proxy, pki,
        "--rate", "20", "--target-rate", "20", "--duration", "2",
        "--connections", "2", "--warmup", "10", "--json", str(report_path),
    )  # fmt: skip

    done = await run_bench_process(argv, tmp_path)

    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["status"] == "PASS"
    assert report["requests"]["scheduled"] == report["outcomes"]["ok"] == 40
    assert set(report["latency_ms_by_operation"]) == {
        "encrypt",
        "decrypt",
        "encrypt_large",
    }
    assert report["warmup"]["ciphertexts"] == 10
    assert fake_proxy.proxy.signature_failures == 0
    assert "verdict: PASS" in stdout
    assert "answered" in stderr  # the live progress lines
    assert "p99" in stderr
    for text in (stdout, stderr, report_path.read_text(encoding="utf-8")):
        assert SECRET not in text


async def test_errors_fail_the_verdict_and_the_exit_status(
    fake_proxy: RunningProxy, pki: Pki, tmp_path: Path
) -> None:
    fake_proxy.proxy.error_names = {"encrypt": "InternalException"}
    argv = bench_argv(
        fake_proxy, pki,
        "--rate", "20", "--duration", "0.5", "--mix", "encrypt=1", "--warmup", "0",
        "--no-progress",
    )  # fmt: skip

    done = await run_bench_process(argv, tmp_path)

    assert done.returncode == 1
    assert "InternalException" in done.stdout.decode()
    assert "verdict: FAIL" in done.stdout.decode()


async def test_no_connection_is_a_setup_error(pki: Pki, tmp_path: Path) -> None:
    unused = RunningProxy(proxy=None, port=1)  # type: ignore[arg-type]
    argv = bench_argv(unused, pki, "--duration", "1", "--no-progress")

    done = await run_bench_process(argv, tmp_path)

    assert done.returncode == 4
    assert "no connection" in done.stderr.decode()


async def test_bad_settings_exit_with_status_two(pki: Pki, tmp_path: Path) -> None:
    unused = RunningProxy(proxy=None, port=1)  # type: ignore[arg-type]
    argv = bench_argv(unused, pki, "--mix", "sign=1")

    done = await run_bench_process(argv, tmp_path)

    assert done.returncode == 2
    assert "unknown operation 'sign'" in done.stderr.decode()
