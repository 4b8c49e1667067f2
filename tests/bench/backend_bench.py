"""Measure the CryptoHub backend's own CPU per host command.

    .venv/bin/python -m tests.bench.backend_bench [--seconds 5] [--rounds 3]
        [--callers 1,32] [--compare /tmp/ch_orig]

The real simulator runs as a child process (``python -m simulator serve``,
mutual TLS, the development PKI minted into a temp folder), as the
end-to-end suite starts it. Each measurement runs in a fresh child process
of its own: a ``CryptoHubBackend`` on that simulator and C concurrent callers,
each doing Encrypt then Decrypt of a 32-byte plaintext with a 110-byte AAD
(an XKS Encrypt's size) in a loop. After a one-second warm-up (connections
opened, the pool grown) it counts host commands and the process's CPU time
(``time.process_time``: the measuring process only, not the simulator) over
the window, and prints CPU microseconds per command.

``--compare DIR`` alternates each measurement with the same one run on the
package copy ``DIR/cryptohub`` (put ahead of ``sidecar/backends`` on the
package path), so before and after share the machine's load of the moment.
The minimum and the spread of the rounds are printed per version and C.

Not a pytest test (the name does not start with ``test_``): figures depend
on the machine and go to docs, not into assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import trio

from fixtures.pki import load, mint
from sidecar.xks.errors import XksError
from tests.e2e.config_files import private_file, simulator_config
from tests.e2e.processes import service_process

_WARMUP_S = 1.0
_PLAINTEXT = b"p" * 32
_AAD = b"a" * 110  # about what the XKS service binds for an Encrypt
_KEY = "foo"


# -- one measurement, in a child process --------------------------------------


async def _measure(
    port: int, pki_dir: Path, callers: int, seconds: float
) -> dict[str, float]:
    # Imported here, after ``_child`` may have put the copy to compare first.
    from sidecar.backends.cryptohub import (
        CryptoHubSettings,
        NodeSettings,
        open_cryptohub_backend,
    )

    pki = load(pki_dir)
    node = NodeSettings(
        name="sim",
        host="127.0.0.1",
        port=port,
        server_ca=pki.sim_ca_cert,
        client_cert=pki.sidecar_hsm_client_cert,
        client_key=pki.sidecar_hsm_client_key,
        server_name="localhost",
    )
    counts = {"commands": 0, "errors": 0}
    running = True

    async def caller() -> None:
        while running:
            try:
                sealed = await backend.encrypt(_KEY, _PLAINTEXT, _AAD)
                await backend.decrypt(_KEY, *sealed, _AAD)
                counts["commands"] += 2
            except XksError:  # a timeout under load, say: counted
                counts["errors"] += 1

    settings = CryptoHubSettings(nodes=(node,))
    async with (
        open_cryptohub_backend(settings) as backend,
        trio.open_nursery() as nursery,
    ):
        for _ in range(callers):
            nursery.start_soon(caller)
        await trio.sleep(_WARMUP_S)
        before, cpu_before, times_before = dict(counts), time.process_time(), os.times()
        await trio.sleep(seconds)
        cpu = time.process_time() - cpu_before
        times = os.times()
        commands = counts["commands"] - before["commands"]
        errors = counts["errors"] - before["errors"]
        running = False
    return {
        "cpu_us_per_command": cpu / max(commands, 1) * 1e6,
        "user_us": (times.user - times_before.user) / max(commands, 1) * 1e6,
        "system_us": (times.system - times_before.system) / max(commands, 1) * 1e6,
        "commands_per_s": commands / seconds,
        "errors": errors,
    }


def _child(args: argparse.Namespace) -> None:
    if args.package:
        import sidecar.backends

        sidecar.backends.__path__.insert(0, args.package)
    callers = int(args.callers)
    result = trio.run(_measure, args.port, Path(args.pki), callers, args.seconds)
    print(json.dumps(result))


# -- the driver ---------------------------------------------------------------


def _run_child(
    port: int, pki_dir: Path, callers: int, seconds: float, package: str
) -> dict[str, float]:
    command = [
        sys.executable, "-m", "tests.bench.backend_bench", "--child",
        "--port", str(port), "--pki", str(pki_dir), "--callers", str(callers),
        "--seconds", str(seconds), "--package", package,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def _start_simulator(workdir: Path, processes: ExitStack) -> tuple[Path, int]:
    pki_dir = workdir / "pki"
    pki = mint(pki_dir)
    master_key = private_file(workdir / "master.key", os.urandom(32).hex())
    (workdir / "simulator.toml").write_text(simulator_config(pki, workdir, master_key))
    simulator = service_process("simulator", workdir)
    processes.callback(simulator.stop)
    return pki_dir, simulator.start()["host"]


def _summary(label: str, runs: list[dict[str, float]]) -> str:
    cpu = [run["cpu_us_per_command"] for run in runs]
    rate = min(run["commands_per_s"] for run in runs)
    errors = sum(run["errors"] for run in runs)
    shown = ", ".join(f"{value:.1f}" for value in cpu)
    return (
        f"{label}: min {min(cpu):.1f} us/command, spread {max(cpu) - min(cpu):.1f}"
        f" ({shown}); >= {rate:.0f} commands/s; errors {errors:g}"
    )


def main() -> None:
    args = _parse_args()
    if args.child:
        _child(args)
        return
    callers = [int(value) for value in args.callers.split(",")]
    versions = {"current": ""}
    if args.compare:
        versions = {"original": args.compare, "current": ""}
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as temp, ExitStack() as processes:
        pki_dir, port = _start_simulator(Path(temp), processes)
        for _ in range(args.rounds):
            for count in callers:
                for name, package in versions.items():
                    run = _run_child(port, pki_dir, count, args.seconds, package)
                    results.setdefault((name, count), []).append(run)
                    print(f"  {name} C={count}: {json.dumps(run)}", flush=True)
    for (name, count), runs in sorted(results.items(), key=lambda item: item[0][1]):
        print(_summary(f"{name:>8} C={count:<3}", runs))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callers", default="1,32")
    parser.add_argument("--compare", default="", help="folder holding cryptohub/")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--pki", default="", help=argparse.SUPPRESS)
    parser.add_argument("--package", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
