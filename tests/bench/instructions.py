"""Count the sidecar's CPU instructions per request, under callgrind.

    .venv/bin/python -m tests.bench.instructions [--rate 4] [--duration 30]
        [--connections 4] [--keep]

CPU time per request on the shared two-core target moves by 10-25 % from one
run to the next (docs/performance.md), which hides most single changes on
the request path. Instructions do not move with the machine's other load:
``valgrind --tool=callgrind`` counts them, the same for the same code and
input. This runs the stack as ``stack_bench`` does (real TLS, mTLS, SigV4,
the simulator over mutual TLS) with the sidecar under callgrind, drives it
with the load tool at a low rate (callgrind runs the sidecar some fifty
times slower), counts the sidecar's instructions over the load tool's timed
window (callgrind_control: zeroed at the first progress line, dumped at the
last) and divides by the answers of the window.

The figure is for requests that come one at a time, each waking the
sidecar: it includes the event loop's per-wake-up work, which a busy
sidecar shares among many requests. Compare versions with it, not with the
CPU figures of ``stack_bench``. Needs valgrind (Debian: ``valgrind``).

Not a pytest test: it takes minutes and its figure is a measurement.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fixtures.pki import mint
from tests.bench.bench_stack import DEV_URI_PATH, BenchStack, bench_stack

_PROGRESS = re.compile(r"^\[\s*(\d+) s\] sent (\d+)/s\s+answered (\d+)/s")
_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)
_KEY_ID = "foo"


def _load_tool_argv(args: argparse.Namespace, stack: BenchStack) -> list[str]:
    pki = stack.pki
    return [
        sys.executable, "-m", "sidecar.bench",
        "--endpoint", f"https://127.0.0.1:{stack.port}",
        "--server-name", "localhost", "--uri-path", DEV_URI_PATH,
        "--key-id", _KEY_ID, "--access-key-id", stack.access_key_id,
        "--secret-file", str(stack.secret_file),
        "--ca-file", str(pki.public_root_cert),
        "--client-cert", str(pki.kms_client_chain),
        "--client-key", str(pki.kms_client_key),
        "--rate", f"{args.rate:g}", "--target-rate", f"{args.rate:g}",
        "--duration", f"{args.duration:g}", "--connections", str(args.connections),
        "--warmup", "20", "--timeout-ms", "5000", "--give-up-ms", "10000",
    ]  # fmt: skip


def _callgrind(command: str, pid: int) -> None:
    subprocess.run(
        ["callgrind_control", command, str(pid)], check=True, capture_output=True
    )


def _measure(args: argparse.Namespace, stack: BenchStack, out: Path) -> dict[str, int]:
    tool = subprocess.Popen(
        _load_tool_argv(args, stack),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tool.stderr is not None
    lines, answered = 0, 0
    for line in tool.stderr:
        match = _PROGRESS.match(line)
        if match is None:
            continue
        if lines == 0:
            _callgrind("--zero", stack.sidecar_pid)
        else:
            answered += int(match.group(3))
        lines += 1
        last = int(match.group(1))
        if last >= args.duration - 1:
            _callgrind("--dump", stack.sidecar_pid)
            break
    tool.wait()
    dumps = sorted(out.parent.glob(out.name + "*"), key=lambda p: p.stat().st_mtime)
    instructions = int(_TOTALS.findall(dumps[-1].read_text())[-1])
    return {"instructions": instructions, "requests": answered}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (Debian: apt-get install valgrind)")
    workdir = Path(tempfile.mkdtemp(prefix="instructions-"))
    out = workdir / "callgrind.out"
    wrapper = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        "--dump-instr=no", "--compress-strings=no",
    ]  # fmt: skip
    try:
        pki = mint(workdir / "pki", fqdn="xks.example.test")
        with bench_stack(pki, workdir, sidecar_wrapper=wrapper) as stack:
            counted = _measure(args, stack, out)
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    per_request = counted["instructions"] / max(counted["requests"], 1)
    print(json.dumps({**counted, "instructions_per_request": round(per_request)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
