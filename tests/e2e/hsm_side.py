"""The HSM side of a stack, one starter per backend.

    cryptohub  ``python -m simulator serve``; keys through its SSH console
    pkcs11     a SoftHSMv2 token (its own ``softhsm2.conf``, random PINs),
               provisioned with ``python -m sidecar.backends.pkcs11.provision``
               the way ``make run BACKEND=pkcs11`` does it; keys through the
               PKCS#11 admin tool

Each starter returns an ``HsmSide``: the ``[backend.hsm]`` table the sidecar
runs on, the ``KeyAdmin`` for its keys, its log and the secrets it holds.
"""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from fixtures.devstack import find_softhsm_module, provision_token, softhsm_token
from fixtures.pki import Pki
from tests.e2e.config_files import (
    cryptohub_backend,
    pkcs11_backend,
    private_file,
    simulator_config,
)
from tests.e2e.key_admin import KeyAdmin, Pkcs11AdminTool, SimulatorConsole
from tests.e2e.processes import StackError, service_process
from tests.e2e.stack import HOST

TOKEN_LABEL = "xks-e2e"


class BackendUnavailable(StackError):
    """What a backend needs is not installed here (SoftHSMv2 for pkcs11)."""


@dataclass
class HsmSide:
    """What a stack's HSM gives the sidecar and the tests."""

    backend_table: str  # the sidecar's [backend.hsm] table
    key_admin: KeyAdmin
    log: Path
    secrets: list[tuple[str, str]]  # (label, value) no log may hold


def start_simulator(pki: Pki, workdir: Path, processes: ExitStack) -> HsmSide:
    """The simulator, started; ``processes`` stops it on the way out."""
    master_key = private_file(workdir / "master.key", secrets.token_bytes(32).hex())
    (workdir / "simulator.toml").write_text(simulator_config(pki, workdir, master_key))
    simulator = service_process("simulator", workdir)
    processes.callback(simulator.stop)
    ports = simulator.start()
    return HsmSide(
        backend_table=cryptohub_backend(pki, ports["host"]),
        key_admin=SimulatorConsole(pki, HOST, ports["console"]),
        log=simulator.log,
        secrets=[("simulator master key", master_key.read_text().strip())],
    )


def provision_softhsm(workdir: Path) -> HsmSide:
    """A token of this stack's own, with the conformance keys, as ``make run
    BACKEND=pkcs11`` makes one (fixtures/devstack.py)."""
    if find_softhsm_module() is None:
        raise BackendUnavailable(
            "SoftHSMv2 is not installed (apt-get install softhsm2); the pkcs11"
            " conformance run needs it"
        )
    token = softhsm_token(workdir / "softhsm", TOKEN_LABEL)
    log = workdir / "softhsm.log"
    log.write_text(f"$ provision --init-token\n{provision_token(token)}")
    return HsmSide(
        backend_table=pkcs11_backend(token),
        key_admin=Pkcs11AdminTool(token, log),
        log=log,
        secrets=[
            ("token user PIN", token.user_pin_file.read_text().strip()),
            ("token SO PIN", token.so_pin_file.read_text().strip()),
        ],
    )
