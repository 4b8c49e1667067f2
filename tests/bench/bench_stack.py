"""The local stack for benchmarking: the same processes the e2e suite runs.

The simulator and the sidecar are started as ``python -m simulator serve`` and
``python -m sidecar serve`` with the end-to-end suite's generated TOML
configurations (``tests/e2e/harness.py``): real TLS, mutual TLS on both links,
SigV4, ports 0 and ready files, logs to files in the work folder. Two knobs
the suite does not need:

* ``workers``: adds ``workers = N`` to ``[server]``, the sidecar's
  several-process mode;
* ``quota`` and ``max_in_flight``: the dev keystore's
  ``max_requests_per_second`` and ``[server] max_in_flight``, the sidecar's
  overload protection, for measuring what happens past the sustainable rate;
* ``profile_dir``: runs each service under cProfile with a CPU-time clock
  (``cpu_profile``), so a profile of the whole run is written when the
  service exits (SIGTERM is a graceful stop for both).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from fixtures.pki import Pki
from tests.e2e.harness import (
    DEV_SECRET_ENV,
    KeystoreInfo,
    Process,
    new_credential,
    sidecar_config,
    simulator_config,
)
from tests.e2e.processes import START_TIMEOUT_S

REGION = "us-east-1"
_WRAPPED_START_TIMEOUT_S = 300.0
DEV_URI_PATH = "/dev/kms/xks/v1"


@dataclass(frozen=True)
class BenchStack:
    """Where the running stack listens, and what a client needs to call it."""

    pki: Pki
    port: int  # the XKS data plane (TLS, mTLS, SigV4)
    sidecar_pid: int
    simulator_pid: int
    access_key_id: str
    secret_file: Path
    sidecar_log: Path
    simulator_log: Path


def _secret_file(path: Path, content: str) -> Path:
    path.write_text(content + "\n")
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Tuning:
    """Sidecar settings a benchmark varies; None leaves the default."""

    workers: int | None = None
    quota: int | None = None  # the dev keystore's max_requests_per_second
    max_in_flight: int | None = None


def _tuned(config: str, tuning: Tuning) -> str:
    server = "".join(
        f"{name} = {value}\n"
        for name, value in (
            ("workers", tuning.workers),
            ("max_in_flight", tuning.max_in_flight),
        )
        if value is not None
    )
    config = config.replace("[server]\n", f"[server]\n{server}", 1)
    if tuning.quota is not None:
        dev = 'name = "dev"\n'
        assert dev in config, "the e2e configuration has no dev keystore"
        config = config.replace(
            dev, f"{dev}max_requests_per_second = {tuning.quota}\n", 1
        )
    return config


def _service(
    name: str,
    workdir: Path,
    profile_dir: Path | None,
    env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> Process:
    argv = [*wrapper, sys.executable]
    if profile_dir is not None:
        argv += ["-m", "tests.bench.cpu_profile", str(profile_dir / f"{name}.prof")]
        argv += [name]
    else:
        argv += ["-m", name]
    argv += ["serve", "--config", str(workdir / f"{name}.toml")]
    return Process(
        name=name,
        argv=argv,
        log=workdir / f"{name}.log",
        ready_file=workdir / f"{name}.ready.json",
        env=env or {},
        # Under a wrapper such as valgrind a start takes minutes, not seconds.
        start_timeout_s=_WRAPPED_START_TIMEOUT_S if wrapper else START_TIMEOUT_S,
    )


@contextmanager
def bench_stack(
    pki: Pki,
    workdir: Path,
    *,
    tuning: Tuning = Tuning(),
    profile_dir: Path | None = None,
    sidecar_wrapper: Sequence[str] = (),
) -> Iterator[BenchStack]:
    """Start the simulator, then the sidecar; stop both on the way out.

    ``sidecar_wrapper``: a command the sidecar runs under (valgrind, say).
    """
    master_key = _secret_file(workdir / "master.key", secrets.token_bytes(32).hex())
    keystores = {
        "dev": KeystoreInfo(
            "dev", DEV_URI_PATH, REGION, [new_credential(), new_credential()]
        ),
        "tenant-b": KeystoreInfo(
            "tenant-b", "/tenant-b/kms/xks/v1", REGION, [new_credential()]
        ),
    }
    dev = keystores["dev"]
    secret_files = [
        _secret_file(workdir / "dev-1.secret", dev.credentials[0][1]),
        _secret_file(
            workdir / "tenant-b.secret", keystores["tenant-b"].credentials[0][1]
        ),
    ]
    (workdir / "simulator.toml").write_text(simulator_config(pki, workdir, master_key))
    simulator = _service("simulator", workdir, profile_dir)
    sidecar = _service(
        "sidecar",
        workdir,
        profile_dir,
        {DEV_SECRET_ENV: dev.credentials[1][1]},
        sidecar_wrapper,
    )
    with ExitStack() as running:
        running.callback(simulator.stop)
        hsm_port = simulator.start()["host"]
        config = sidecar_config(pki, hsm_port, keystores, secret_files)
        (workdir / "sidecar.toml").write_text(_tuned(config, tuning))
        running.callback(sidecar.stop)
        ports = sidecar.start()
        assert simulator.child is not None
        assert sidecar.child is not None
        yield BenchStack(
            pki=pki,
            port=ports["xks"],
            sidecar_pid=sidecar.child.pid,
            simulator_pid=simulator.child.pid,
            access_key_id=dev.credentials[0][0],
            secret_file=secret_files[0],
            sidecar_log=sidecar.log,
            simulator_log=simulator.log,
        )
