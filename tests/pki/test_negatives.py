"""The bad certificates are bad in exactly one way each.

A negative fixture that fails for two reasons proves nothing about either, so
each test also shows the certificate is otherwise sound (right issuer, right
name, or a valid chain at another time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.x509.verification import VerificationError

from fixtures.pki import Pki
from tests.pki.certs import (
    client_verifier,
    common_name,
    read_cert,
    server_verifier,
    verify_chain,
)

KMS_CN = "cks.kms.us-east-1.amazonaws.com"


def test_expired_client_is_past_its_not_after(pki: Pki) -> None:
    cert = read_cert(pki.expired_client_cert)

    assert cert.not_valid_after_utc < datetime.now(UTC)
    assert common_name(cert) == KMS_CN
    cert.verify_directly_issued_by(read_cert(pki.aws_intermediate_cert))


def test_expired_client_is_rejected_now_and_only_for_its_age(pki: Pki) -> None:
    cert = read_cert(pki.expired_client_cert)
    intermediate = read_cert(pki.aws_intermediate_cert)
    back_then = cert.not_valid_after_utc - timedelta(days=1)

    with pytest.raises(VerificationError, match="not valid at validation time"):
        client_verifier(pki.aws_root_cert).verify(cert, [intermediate])
    client_verifier(pki.aws_root_cert, at=back_then).verify(cert, [intermediate])


def test_self_signed_client_is_self_signed_with_the_kms_cn(pki: Pki) -> None:
    cert = read_cert(pki.self_signed_client_cert)

    assert cert.issuer == cert.subject
    assert common_name(cert) == KMS_CN
    cert.verify_directly_issued_by(cert)


def test_self_signed_client_is_rejected_by_the_aws_root(pki: Pki) -> None:
    cert = read_cert(pki.self_signed_client_cert)
    intermediate = read_cert(pki.aws_intermediate_cert)

    with pytest.raises(VerificationError):
        client_verifier(pki.aws_root_cert).verify(cert, [intermediate])


def test_wrong_cn_client_chains_to_aws_root_under_another_cn(pki: Pki) -> None:
    cert = read_cert(pki.wrong_cn_client_cert)
    intermediate = read_cert(pki.aws_intermediate_cert)

    client_verifier(pki.aws_root_cert).verify(cert, [intermediate])
    assert common_name(cert) == "not-kms.example.com"


@pytest.mark.parametrize("hostname", ["xks.example.test", "localhost", "127.0.0.1"])
def test_wrong_san_server_fails_the_sidecar_names(pki: Pki, hostname: str) -> None:
    verifier = server_verifier(pki.public_root_cert, hostname)

    with pytest.raises(VerificationError, match="subjectAltName"):
        verify_chain(verifier, pki.wrong_san_server_chain)


def test_wrong_san_server_chains_to_public_root_for_its_own_name(pki: Pki) -> None:
    verifier = server_verifier(pki.public_root_cert, "wrong.example.invalid")

    verify_chain(verifier, pki.wrong_san_server_chain)


def test_foreign_client_mimics_the_sidecar_but_is_rejected(pki: Pki) -> None:
    foreign = read_cert(pki.foreign_hsm_client_cert)
    genuine = read_cert(pki.sidecar_hsm_client_cert)

    assert foreign.subject == genuine.subject
    with pytest.raises(VerificationError):
        client_verifier(pki.sim_ca_cert).verify(foreign, [])
    client_verifier(pki.foreign_ca_cert).verify(foreign, [])
