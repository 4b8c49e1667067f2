"""Building the TLS context: key passphrases and configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from fixtures.pki import Pki
from sidecar.dataplane import (
    HttpLimits,
    TlsConfigError,
    TlsSettings,
    build_server_tls,
    kms_client_common_name,
)

PASSPHRASE = b"correct horse battery staple"


def _encrypted_key(pki: Pki, folder: Path) -> Path:
    key = serialization.load_pem_private_key(
        pki.sidecar_server_key.read_bytes(), password=None
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    path = folder / "encrypted_key.pem"
    path.write_bytes(pem)
    return path


def test_encrypted_key_opens_with_passphrase_from_file(
    pki: Pki, tmp_path: Path
) -> None:
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_bytes(PASSPHRASE + b"\n")  # editors add a newline
    settings = TlsSettings(
        pki.sidecar_server_chain,
        _encrypted_key(pki, tmp_path),
        key_passphrase_file=passphrase_file,
    )

    assert build_server_tls(settings).requires_client_certificate is False


def test_encrypted_key_opens_with_passphrase_from_environment(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XKS_TEST_KEY_PASSPHRASE", PASSPHRASE.decode())
    settings = TlsSettings(
        pki.sidecar_server_chain,
        _encrypted_key(pki, tmp_path),
        key_passphrase_env="XKS_TEST_KEY_PASSPHRASE",
    )

    build_server_tls(settings)


def test_wrong_passphrase_is_a_config_error(pki: Pki, tmp_path: Path) -> None:
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_bytes(b"wrong")
    settings = TlsSettings(
        pki.sidecar_server_chain,
        _encrypted_key(pki, tmp_path),
        key_passphrase_file=passphrase_file,
    )

    with pytest.raises(TlsConfigError):
        build_server_tls(settings)


def test_key_not_matching_the_certificate_is_a_config_error(pki: Pki) -> None:
    settings = TlsSettings(pki.sidecar_server_chain, pki.sidecar_server_rsa_key)

    with pytest.raises(TlsConfigError):
        build_server_tls(settings)


def test_passphrase_from_two_sources_is_refused(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        TlsSettings(
            pki.sidecar_server_chain,
            pki.sidecar_server_key,
            key_passphrase_file=tmp_path / "p",
            key_passphrase_env="P",
        )


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        HttpLimits(max_body_bytes=0)


def test_kms_client_name_follows_the_region() -> None:
    assert kms_client_common_name("eu-west-1") == "cks.kms.eu-west-1.amazonaws.com"
