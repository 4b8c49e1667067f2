"""Each chain verifies to the trust anchor its peer will use, and to no other.

Verification uses cryptography's WebPKI verifier, the strict profile a
production peer applies, not a signature check alone.
"""

from __future__ import annotations

import pytest
from cryptography.x509.verification import VerificationError

from fixtures.pki import Pki
from tests.pki.certs import (
    client_verifier,
    read_cert,
    read_certs,
    server_verifier,
    verify_chain,
)

SIDECAR_NAMES = ["xks.example.test", "localhost", "127.0.0.1"]


@pytest.mark.parametrize("hostname", SIDECAR_NAMES)
def test_sidecar_ecdsa_server_chain_verifies_to_public_root(
    pki: Pki, hostname: str
) -> None:
    verify_chain(
        server_verifier(pki.public_root_cert, hostname), pki.sidecar_server_chain
    )


@pytest.mark.parametrize("hostname", SIDECAR_NAMES)
def test_sidecar_rsa_server_chain_verifies_to_public_root(
    pki: Pki, hostname: str
) -> None:
    verifier = server_verifier(pki.public_root_cert, hostname)
    verify_chain(verifier, pki.sidecar_server_rsa_chain)


@pytest.mark.parametrize("chain", ["sidecar_server_chain", "sidecar_server_rsa_chain"])
def test_server_chain_is_leaf_then_public_intermediate(pki: Pki, chain: str) -> None:
    leaf, intermediate = read_certs(getattr(pki, chain))

    assert intermediate == read_cert(pki.public_intermediate_cert)
    leaf.verify_directly_issued_by(intermediate)


def test_server_cert_file_is_the_leaf_of_the_ecdsa_chain(pki: Pki) -> None:
    assert read_cert(pki.sidecar_server_cert) == read_certs(pki.sidecar_server_chain)[0]


def test_kms_client_chain_verifies_to_aws_root(pki: Pki) -> None:
    verify_chain(client_verifier(pki.aws_root_cert), pki.kms_client_chain)


def test_kms_client_cert_file_is_the_leaf_of_its_chain(pki: Pki) -> None:
    leaf, intermediate = read_certs(pki.kms_client_chain)

    assert read_cert(pki.kms_client_cert) == leaf
    assert read_cert(pki.aws_intermediate_cert) == intermediate


def test_aws_bundle_is_intermediate_then_root(pki: Pki) -> None:
    expected = [read_cert(pki.aws_intermediate_cert), read_cert(pki.aws_root_cert)]

    assert read_certs(pki.aws_ca_bundle) == expected


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_simulator_server_verifies_to_simulator_ca(pki: Pki, hostname: str) -> None:
    verify_chain(server_verifier(pki.sim_ca_cert, hostname), pki.simulator_server_chain)


def test_sidecar_hsm_client_verifies_to_simulator_ca(pki: Pki) -> None:
    verify_chain(client_verifier(pki.sim_ca_cert), pki.sidecar_hsm_client_cert)


def test_sidecar_server_chain_does_not_verify_to_aws_root(pki: Pki) -> None:
    verifier = server_verifier(pki.aws_root_cert, "localhost")

    with pytest.raises(VerificationError):
        verify_chain(verifier, pki.sidecar_server_chain)


def test_kms_client_does_not_verify_to_public_root(pki: Pki) -> None:
    with pytest.raises(VerificationError):
        verify_chain(client_verifier(pki.public_root_cert), pki.kms_client_chain)


def test_simulator_server_does_not_verify_to_public_root(pki: Pki) -> None:
    verifier = server_verifier(pki.public_root_cert, "localhost")

    with pytest.raises(VerificationError):
        verify_chain(verifier, pki.simulator_server_chain)
