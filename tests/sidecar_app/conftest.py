"""Shared pieces of the sidecar application tests: a valid configuration
written from the session's PKI, a fake key manager, and request signing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fixtures.pki import Pki
from sidecar.backends.base import GcmResult, KeyDescription
from sidecar.xks.errors import InvalidCiphertextException, KeyNotFoundException

ACCESS_KEY_ID = "AKIAXKSSIDECARTESTKEY"
SECRET = "Qm9ndXMgc2VjcmV0IGZvciB0ZXN0czogMzIgYnl0ZXMhIQ=="
REGION = "us-east-1"
HOST = "xks.example.test"
ROOT = Path(__file__).resolve().parents[2]


def q(value: object) -> str:
    return json.dumps(str(value))


def base_config(pki: Pki, secret_file: Path) -> str:
    """A complete, valid sidecar.toml; tests edit its text."""
    return f"""
[server]
listen = "127.0.0.1"
port = 0

[server.tls]
certificate_chain = {q(pki.sidecar_server_chain)}
private_key = {q(pki.sidecar_server_key)}

[server.mtls]
client_ca = {q(pki.aws_ca_bundle)}

[[keystore]]
name = "dev"
uri_path = "/dev/kms/xks/v1"
region = "{REGION}"
backend = "hub"

[[keystore.credential]]
access_key_id = "{ACCESS_KEY_ID}"
secret_access_key_file = {q(secret_file)}

[backend.hub]
kind = "cryptohub"
server_ca = {q(pki.sim_ca_cert)}
client_cert = {q(pki.sidecar_hsm_client_cert)}
client_key = {q(pki.sidecar_hsm_client_key)}

[[backend.hub.node]]
name = "hub-1"
host = "127.0.0.1"
port = 9100
"""


def private_file(path: Path, content: str, mode: int = 0o600) -> Path:
    path.write_text(content + "\n")
    os.chmod(path, mode)
    return path


@dataclass
class ConfigFile:
    """A config file in tmp_path; ``write`` saves edited text, returns path."""

    folder: Path
    text: str
    secret_file: Path

    def write(self, text: str | None = None) -> Path:
        path = self.folder / "sidecar.toml"
        path.write_text(self.text if text is None else text)
        return path

    def edited(self, old: str, new: str) -> Path:
        assert old in self.text, old
        return self.write(self.text.replace(old, new))


@pytest.fixture
def config_file(pki: Pki, tmp_path: Path) -> ConfigFile:
    secret = private_file(tmp_path / "dev.secret", SECRET)
    return ConfigFile(tmp_path, base_config(pki, secret), secret)


@dataclass
class FakeKeyManager:
    """AES-GCM in memory; a key named "boom" raises an unexpected error."""

    keys: dict[str, bytes] = field(default_factory=dict)
    probes: int = 0

    def add(self, key_id: str) -> None:
        self.keys[key_id] = AESGCM.generate_key(bit_length=256)

    async def describe_key(self, key_id: str) -> KeyDescription:
        if key_id == "boom":
            raise RuntimeError("a bug deep in a backend")
        if key_id not in self.keys:
            raise KeyNotFoundException()
        return KeyDescription("AES_256", frozenset({"ENCRYPT", "DECRYPT"}), True, 1)

    async def encrypt(self, key_id: str, plaintext: bytes, hsm_aad: bytes) -> GcmResult:
        iv = os.urandom(12)
        sealed = AESGCM(self.keys[key_id]).encrypt(iv, plaintext, hsm_aad)
        return GcmResult(1, iv, sealed[:-16], sealed[-16:])

    async def decrypt(
        self,
        key_id: str,
        key_version: int,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
        hsm_aad: bytes,
    ) -> bytes:
        try:
            return AESGCM(self.keys[key_id]).decrypt(iv, ciphertext + tag, hsm_aad)
        except InvalidTag as exc:
            raise InvalidCiphertextException() from exc


Signed = list[tuple[bytes, bytes]]


def sign(
    path: str, body: bytes, *, secret: str = SECRET, access_key_id: str = ACCESS_KEY_ID
) -> Signed:
    """The headers botocore sends for a POST of ``body`` to ``path``, now."""
    request = AWSRequest(method="POST", url=f"https://{HOST}{path}", data=body)
    SigV4Auth(Credentials(access_key_id, secret), "kms-xks-proxy", REGION).add_auth(
        request
    )
    headers = [(b"host", HOST.encode()), (b"content-type", b"application/json")]
    return headers + [
        (k.lower().encode(), v.encode())
        for k, v in request.headers.items()
        if k.lower() != "host"
    ]


SignFn = Callable[..., Signed]
