"""The TOML configurations and secret files the stack's processes read.

Generated into the stack's temp folder from the session's ``pki``, every
port 0. What the sidecar's configuration holds (common.md, "Sidecar
end-to-end harness contract"):

    keystore  uri_path              credentials       policy
    dev       /dev/kms/xks/v1       two (file, env)   none
    tenant-b  /tenant-b/kms/xks/v1  one               deny kmsOperation ReEncrypt;
                                                      allow arn:aws:iam::111122223333:*;
                                                      deny everything else

and one ``[backend.hsm]`` table: the simulator (``cryptohub``) or a
SoftHSMv2 token (``pkcs11``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from fixtures.devstack import SoftHsmToken
from fixtures.pki import Pki
from tests.e2e.stack import HOST, REGION, SERVER_NAME, KeystoreInfo

# The second dev credential is read from the environment, so the e2e run
# exercises both secret sources.
DEV_SECRET_ENV = "XKS_E2E_DEV_SECRET_2"


def _q(value: object) -> str:
    """A TOML basic string (its escapes are JSON's for what we write)."""
    return json.dumps(str(value))


def private_file(path: Path, content: str) -> Path:
    """Write ``content`` to a new mode-0600 file (a secret no one else reads)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content + "\n")
    return path


def new_credential() -> tuple[str, str]:
    """An access key id and secret in the format KMS accepts (Appendix A)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    access_key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return access_key_id, base64.b64encode(secrets.token_bytes(32)).decode()


def conformance_keystores() -> dict[str, KeystoreInfo]:
    """The two keystores of the harness contract, with fresh credentials."""
    return {
        "dev": KeystoreInfo(
            "dev", "/dev/kms/xks/v1", REGION, [new_credential(), new_credential()]
        ),
        "tenant-b": KeystoreInfo(
            "tenant-b", "/tenant-b/kms/xks/v1", REGION, [new_credential()]
        ),
    }


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
    """The sidecar's configuration on the simulator at ``hsm_port``."""
    return sidecar_config_with_backend(
        pki, keystores, secret_files, cryptohub_backend(pki, hsm_port)
    )


def cryptohub_backend(pki: Pki, hsm_port: int) -> str:
    return f"""
[backend.hsm]
kind = "cryptohub"
timeout_ms = 150
server_ca = {_q(pki.sim_ca_cert)}
client_cert = {_q(pki.sidecar_hsm_client_cert)}
client_key = {_q(pki.sidecar_hsm_client_key)}

[[backend.hsm.node]]
name = "sim-1"
host = "{HOST}"
port = {hsm_port}
server_name = "localhost"
"""


def pkcs11_backend(token: SoftHsmToken) -> str:
    # SoftHSMv2 never draws a GCM IV itself (docs/backend-pkcs11.md).
    return f"""
[backend.hsm]
kind = "pkcs11"
module = {_q(token.module)}
token_label = {_q(token.label)}
user_pin_file = {_q(token.user_pin_file)}
timeout_ms = 150
iv_source = "random"

[backend.hsm.environment]
SOFTHSM2_CONF = {_q(token.conf)}
"""


def sidecar_config_with_backend(
    pki: Pki,
    keystores: dict[str, KeystoreInfo],
    secret_files: list[Path],
    backend_table: str,
) -> str:
    """The sidecar's configuration around a ready ``[backend.hsm]`` table."""
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
backend = "hsm"

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
backend = "hsm"

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
{backend_table}
[health]
interval_s = 1
max_age_s = 60

[logging]
level = "INFO"
format = "json"
"""
