"""The end-to-end stack: the real sidecar and its HSM, run as an operator would.

``running_stack`` starts one stack for one backend, into a temp folder (from
the session's ``pki``): the HSM side first (``hsm_side``: the simulator, or a
provisioned SoftHSMv2 token), then ``python -m sidecar serve`` on it. Each
process gets a TOML configuration (``config_files``), ``--ready-file`` and
every port 0 (``processes``); the harness waits for each ready file and
yields a ``Stack`` (``stack``) describing where things are. Whatever
happens, the processes are stopped on the way out, in reverse order.

The rest of the harness, one job per module:

    stack         Stack, KeystoreInfo, host names and backend names
    config_files  the TOML configurations and secret files
    processes     a service as a child process: start, wait, stop
    key_admin     the HSM's admin console per backend (KeyAdmin)
    hsm_side      starting the HSM side per backend
    leaks         the session-end check that no secret reached a log
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from fixtures.pki import Pki
from tests.e2e.config_files import (
    DEV_SECRET_ENV,
    conformance_keystores,
    new_credential,
    private_file,
    sidecar_config,
    sidecar_config_with_backend,
    simulator_config,
)
from tests.e2e.hsm_side import provision_softhsm, start_simulator
from tests.e2e.processes import Process, service_process
from tests.e2e.stack import (
    CRYPTOHUB,
    HOST,
    PKCS11,
    SERVER_NAME,
    KeystoreInfo,
    Stack,
)

# tests/bench builds its own stack from these pieces and imports them from
# here; they stay importable under this name.
__all__ = [
    "DEV_SECRET_ENV",
    "KeystoreInfo",
    "Process",
    "new_credential",
    "running_stack",
    "sidecar_config",
    "simulator_config",
]


@contextmanager
def running_stack(pki: Pki, workdir: Path, backend: str = CRYPTOHUB) -> Iterator[Stack]:
    """Start the HSM side, then the sidecar; stop both (in reverse) whatever
    happens. Raises BackendUnavailable if SoftHSMv2 is missing (pkcs11)."""
    keystores = conformance_keystores()
    dev, tenant_b = keystores["dev"], keystores["tenant-b"]
    secret_files = [
        private_file(workdir / "dev-1.secret", dev.credentials[0][1]),
        private_file(workdir / "tenant-b.secret", tenant_b.credentials[0][1]),
    ]
    sidecar = service_process(
        "sidecar", workdir, {DEV_SECRET_ENV: dev.credentials[1][1]}
    )

    with ExitStack() as processes:
        if backend == PKCS11:
            hsm = provision_softhsm(workdir)
        else:
            hsm = start_simulator(pki, workdir, processes)
        config = sidecar_config_with_backend(
            pki, keystores, secret_files, hsm.backend_table
        )
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
            simulator_log=hsm.log,
            workdir=workdir,
            key_admin=hsm.key_admin,
            backend=backend,
        )
        for info in keystores.values():
            for access_key_id, secret in info.credentials:
                stack.remember_secret(f"SigV4 secret of {access_key_id}", secret)
        for label, value in hsm.secrets:
            stack.remember_secret(label, value)
        yield stack
