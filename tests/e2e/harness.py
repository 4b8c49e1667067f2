"""The end-to-end stack: the real simulator and sidecar, run as an operator would.

``running_stack`` writes a TOML configuration for each process into a temp
folder (from the session's ``pki``), starts ``python -m simulator serve`` and
then ``python -m sidecar serve``, each with ``--ready-file`` and every port
0, waits for each ready file, and yields a ``Stack`` describing where things
are. Both processes log to files in that folder (the sidecar one JSON line per
request). Whatever happens, both processes are stopped on the way out
(SIGTERM, then SIGKILL after a grace period); a process that dies while
starting fails the start with the tail of its log.

``find_leaks`` is the session-end check that no secret reached a log: the
SigV4 secret keys, the simulator's master key, anything a test registered
with ``Stack.remember_secret``, and the shapes that only a leak produces in
the sidecar's log (a SigV4 signature, a plaintext or AAD field).

What the stack holds (common.md, "Sidecar end-to-end harness contract"):

    keystore  uri_path              credentials       policy
    dev       /dev/kms/xks/v1       two (file, env)   none
    tenant-b  /tenant-b/kms/xks/v1  one               deny kmsOperation ReEncrypt;
                                                      allow arn:aws:iam::111122223333:*;
                                                      deny everything else
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

from fixtures.pki import Pki

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
HOST = "127.0.0.1"
SERVER_NAME = "localhost"  # the sidecar's certificate has SAN localhost
# Generous for a slow CI machine: the simulator creates and seeds its store,
# the sidecar runs its first deep health check before it listens.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CONSOLE_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 40
# The second dev credential is read from the environment, so the e2e run
# exercises both secret sources.
DEV_SECRET_ENV = "XKS_E2E_DEV_SECRET_2"
# Only a leak puts these into the sidecar's log: parts of a SigV4
# Authorization header, and a request body's secret fields.
LEAK_MARKERS = (
    b"Signature=",
    b"Credential=",
    b'"plaintext":',
    b'"additionalAuthenticatedData":',
)


class StackError(Exception):
    """A process of the stack could not be started."""


@dataclass(frozen=True)
class KeystoreInfo:
    name: str
    uri_path: str
    region: str
    credentials: list[tuple[str, str]] = field(repr=False)  # (access key id, secret)


@dataclass
class Stack:
    pki: Pki
    host: str
    server_name: str
    port: int  # XKS data plane: TLS, mTLS (KMS's CN), SigV4
    ping_port: int  # plain HTTP GET /ping
    keystores: dict[str, KeystoreInfo]
    sidecar_log: Path
    simulator_log: Path
    console_port: int
    workdir: Path
    backend: str = "cryptohub"
    # (label, value) of every secret no log may hold; see ``find_leaks``.
    secrets: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    console_used: bool = False  # since the last ``faults clear``

    def remember_secret(self, label: str, value: bytes | str) -> None:
        """Have the session-end check look for ``value`` in every log."""
        raw = value.encode() if isinstance(value, str) else value
        self.secrets.append((label, raw))

    async def console(self, command: str) -> tuple[int, str, str]:
        """Run one command on the simulator's SSH admin console.

        Returns (exit status, stdout, stderr). Each call opens its own SSH
        connection on its own asyncio loop (trio-asyncio), since every test
        runs in a Trio run of its own.
        """
        self.console_used = True
        with trio.fail_after(CONSOLE_TIMEOUT_S):
            async with trio_asyncio.open_loop():
                connect = aio_as_trio(asyncssh.connect)
                conn = await connect(HOST, self.console_port, **self._ssh_options())
                try:
                    result = await aio_as_trio(conn.run)(command)
                finally:
                    conn.close()
                    await aio_as_trio(conn.wait_closed)()
        return result.exit_status or 0, _text(result.stdout), _text(result.stderr)

    def _ssh_options(self) -> dict[str, object]:
        # Trust only the PKI's host key; ignore the user's own ssh setup.
        host_key = asyncssh.read_private_key(self.pki.ssh_host_key)
        return {
            "username": "admin",
            "client_keys": [self.pki.ssh_admin_key],
            "known_hosts": ([host_key.convert_to_public()], [], []),
            "config": None,
            "agent_path": None,
        }


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


# -- processes -----------------------------------------------------------------


@dataclass
class Process:
    """One service as a child process, its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    ready_file: Path
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    child: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[str, int]:
        """Start and wait until it listens; its ``ports`` from the ready file."""
        command = [*self.argv, "--ready-file", str(self.ready_file)]
        with self.log.open("ab") as log:
            self.child = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        ports = self._wait_until_ready()
        assert all(isinstance(p, int) for p in ports.values()), ports
        return ports

    def _wait_until_ready(self) -> dict[str, int]:
        assert self.child is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                raise StackError(self._failure(f"exited with {self.child.returncode}"))
            if self.ready_file.exists():
                document = json.loads(self.ready_file.read_text())
                return dict(document["ports"])
            time.sleep(0.05)
        raise StackError(self._failure(f"not ready within {START_TIMEOUT_S:g} s"))

    def _failure(self, what: str) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        tail = "\n".join(f"    {line}" for line in lines)
        return f"{self.name} {what} while starting; its log ({self.log}) ends:\n{tail}"

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not end in time."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# -- configuration -----------------------------------------------------------------


def _q(value: object) -> str:
    """A TOML basic string (its escapes are JSON's for what we write)."""
    return json.dumps(str(value))


def _private_file(path: Path, content: str) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content + "\n")
    return path


def new_credential() -> tuple[str, str]:
    """An access key id and secret in the format KMS accepts (Appendix A)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    access_key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return access_key_id, base64.b64encode(secrets.token_bytes(32)).decode()


def simulator_config(pki: Pki, workdir: Path, master_key: Path) -> str:
    return f"""
[node]
id = "cryptohub-sim-e2e"
model = "CryptoHub Simulator"
version = "0.1.0"

[host]
listen = "{HOST}"
port = 0
cert = {_q(pki.simulator_server_chain)}
key = {_q(pki.simulator_server_key)}
client_ca = {_q(pki.sim_ca_cert)}

[console]
listen = "{HOST}"
port = 0
host_key = {_q(pki.ssh_host_key)}
authorized_keys = {_q(pki.ssh_admin_pubkey)}

[store]
path = {_q(workdir / "keys.db")}
master_key_file = {_q(master_key)}
seed = true
"""


def sidecar_config(
    pki: Pki,
    hsm_port: int,
    keystores: dict[str, KeystoreInfo],
    secret_files: list[Path],
) -> str:
    dev, tenant_b = keystores["dev"], keystores["tenant-b"]
    return f"""
[server]
listen = "{HOST}"
port = 0
ping_port = 0
public_endpoint = "https://{SERVER_NAME}"

[server.tls]
certificate_chain = {_q(pki.sidecar_server_chain)}
private_key = {_q(pki.sidecar_server_key)}

[server.mtls]
enabled = true
client_ca = {_q(pki.aws_ca_bundle)}
client_common_name = "cks.kms.{REGION}.amazonaws.com"

[[keystore]]
name = "dev"
uri_path = "{dev.uri_path}"
region = "{REGION}"
backend = "hub"

[[keystore.credential]]
access_key_id = "{dev.credentials[0][0]}"
secret_access_key_file = {_q(secret_files[0])}

[[keystore.credential]]
access_key_id = "{dev.credentials[1][0]}"
secret_access_key_env = "{DEV_SECRET_ENV}"

[[keystore]]
name = "tenant-b"
uri_path = "{tenant_b.uri_path}"
region = "{REGION}"
backend = "hub"

[[keystore.credential]]
access_key_id = "{tenant_b.credentials[0][0]}"
secret_access_key_file = {_q(secret_files[1])}

[keystore.policy]
default = "deny"

[[keystore.policy.rule]]
name = "no-reencrypt"
effect = "deny"
kms_operations = ["ReEncrypt"]

[[keystore.policy.rule]]
name = "account-111122223333"
effect = "allow"
principals = ["arn:aws:iam::111122223333:*"]

[backend.hub]
kind = "cryptohub"
timeout_ms = 150
server_ca = {_q(pki.sim_ca_cert)}
client_cert = {_q(pki.sidecar_hsm_client_cert)}
client_key = {_q(pki.sidecar_hsm_client_key)}

[[backend.hub.node]]
name = "sim-1"
host = "{HOST}"
port = {hsm_port}
server_name = "localhost"

[health]
interval_s = 1
max_age_s = 60

[logging]
level = "INFO"
format = "json"
"""


def _keystores() -> dict[str, KeystoreInfo]:
    return {
        "dev": KeystoreInfo(
            "dev", "/dev/kms/xks/v1", REGION, [new_credential(), new_credential()]
        ),
        "tenant-b": KeystoreInfo(
            "tenant-b", "/tenant-b/kms/xks/v1", REGION, [new_credential()]
        ),
    }


# -- the stack ---------------------------------------------------------------------


@contextmanager
def running_stack(pki: Pki, workdir: Path) -> Iterator[Stack]:
    """Start simulator then sidecar; stop both (in reverse) whatever happens."""
    master_key = _private_file(workdir / "master.key", secrets.token_bytes(32).hex())
    keystores = _keystores()
    dev, tenant_b = keystores["dev"], keystores["tenant-b"]
    secret_files = [
        _private_file(workdir / "dev-1.secret", dev.credentials[0][1]),
        _private_file(workdir / "tenant-b.secret", tenant_b.credentials[0][1]),
    ]
    (workdir / "simulator.toml").write_text(simulator_config(pki, workdir, master_key))
    simulator = _process("simulator", workdir)
    sidecar = _process("sidecar", workdir, {DEV_SECRET_ENV: dev.credentials[1][1]})

    with ExitStack() as processes:
        processes.callback(simulator.stop)
        simulator_ports = simulator.start()
        config = sidecar_config(pki, simulator_ports["host"], keystores, secret_files)
        (workdir / "sidecar.toml").write_text(config)
        processes.callback(sidecar.stop)
        sidecar_ports = sidecar.start()

        stack = Stack(
            pki=pki,
            host=HOST,
            server_name=SERVER_NAME,
            port=sidecar_ports["xks"],
            ping_port=sidecar_ports["ping"],
            keystores=keystores,
            sidecar_log=sidecar.log,
            simulator_log=simulator.log,
            console_port=simulator_ports["console"],
            workdir=workdir,
        )
        for info in keystores.values():
            for access_key_id, secret in info.credentials:
                stack.remember_secret(f"SigV4 secret of {access_key_id}", secret)
        stack.remember_secret("simulator master key", master_key.read_text().strip())
        yield stack


def _process(name: str, workdir: Path, env: Mapping[str, str] | None = None) -> Process:
    argv = [
        sys.executable,
        "-m",
        name,
        "serve",
        "--config",
        str(workdir / f"{name}.toml"),
    ]
    return Process(
        name=name,
        argv=argv,
        log=workdir / f"{name}.log",
        ready_file=workdir / f"{name}.ready.json",
        env=env or {},
    )


def find_leaks(stack: Stack) -> list[str]:
    """Which secrets (by label, never by value) appear in which log."""
    leaks = []
    logs = {
        path: path.read_bytes() for path in (stack.sidecar_log, stack.simulator_log)
    }
    for label, value in stack.secrets:
        for path, content in logs.items():
            if value in content:
                leaks.append(f"{label} in {path.name}")
    sidecar_log = logs[stack.sidecar_log]
    for marker in LEAK_MARKERS:
        if marker in sidecar_log:
            leaks.append(f"{marker.decode()!r} in {stack.sidecar_log.name}")
    return leaks
