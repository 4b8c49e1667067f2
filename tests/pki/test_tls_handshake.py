"""Real TLS handshakes with the minted files, using the stdlib ``ssl`` module.

These are the checks the sidecar's peers make: AWS KMS verifies the sidecar's
chain against its public root for the configured name, the sidecar verifies
the KMS client chain against Amazon Trust Services, and the sidecar and the
HSM simulator authenticate each other under the simulator CA.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from fixtures.pki import Pki
from tests.pki.certs import common_name
from tests.pki.tls import Outcome, client_context, handshake, server_context

SIDECAR_NAMES = ["localhost", "xks.example.test", "127.0.0.1"]
# The ECDHE suites of the XKS proxy's TLS 1.2 list, one per key type.
TLS12_SUITES = {
    "ecdsa": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "rsa": "ECDHE-RSA-AES256-GCM-SHA384",
}


def sidecar_server(
    pki: Pki, key_type: str, *, client_ca: Path | None = None
) -> ssl.SSLContext:
    if key_type == "rsa":
        chain, key = pki.sidecar_server_rsa_chain, pki.sidecar_server_rsa_key
    else:
        chain, key = pki.sidecar_server_chain, pki.sidecar_server_key
    return server_context(chain, key, client_ca=client_ca)


def tls12_client(pki: Pki, suite: str) -> ssl.SSLContext:
    context = client_context(pki.public_root_cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(suite)
    return context


@pytest.mark.parametrize("hostname", SIDECAR_NAMES)
@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_tls12_handshake_verifies_sidecar_chain_to_public_root(
    pki: Pki, key_type: str, hostname: str
) -> None:
    suite = TLS12_SUITES[key_type]

    outcome = handshake(
        sidecar_server(pki, key_type), tls12_client(pki, suite), hostname
    )

    assert outcome.ok, outcome
    assert outcome.server is not None
    assert (outcome.server.version, outcome.server.cipher) == ("TLSv1.2", suite)


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_tls13_handshake_verifies_sidecar_chain(pki: Pki, key_type: str) -> None:
    client = client_context(pki.public_root_cert)

    outcome = handshake(sidecar_server(pki, key_type), client, "xks.example.test")

    assert outcome.ok, outcome
    assert outcome.server is not None
    assert outcome.server.version == "TLSv1.3"


def test_wrong_san_server_fails_hostname_verification(pki: Pki) -> None:
    server = server_context(pki.wrong_san_server_chain, pki.wrong_san_server_key)
    client = client_context(pki.public_root_cert)

    outcome = handshake(server, client, "xks.example.test")

    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in str(outcome.client_error)


def test_client_trusting_only_aws_rejects_the_sidecar(pki: Pki) -> None:
    client = client_context(pki.aws_root_cert)

    outcome = handshake(sidecar_server(pki, "ecdsa"), client, "localhost")

    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)


def kms_handshake(pki: Pki, chain: Path, key: Path) -> Outcome:
    """The sidecar's XKS listener, requiring a client certificate from AWS."""
    server = sidecar_server(pki, "ecdsa", client_ca=pki.aws_ca_bundle)
    client = client_context(pki.public_root_cert, chain=chain, key=key)
    return handshake(server, client, "xks.example.test")


def test_kms_client_certificate_is_accepted_with_its_cn(pki: Pki) -> None:
    outcome = kms_handshake(pki, pki.kms_client_chain, pki.kms_client_key)

    assert outcome.ok, outcome
    assert outcome.server is not None
    assert outcome.server.peer_cert is not None
    assert common_name(outcome.server.peer_cert) == "cks.kms.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("cert", "reason"),
    [("expired_client", "certificate has expired"),
     ("self_signed_client", "self-signed certificate")],
)  # fmt: skip
def test_bad_kms_client_certificates_are_rejected(
    pki: Pki, cert: str, reason: str
) -> None:
    chain, key = getattr(pki, f"{cert}_cert"), getattr(pki, f"{cert}_key")

    outcome = kms_handshake(pki, chain, key)

    assert not outcome.ok
    assert isinstance(outcome.server_error, ssl.SSLCertVerificationError)
    assert outcome.server_error.verify_message == reason


def test_wrong_cn_client_passes_tls_so_the_sidecar_must_check_the_cn(pki: Pki) -> None:
    outcome = kms_handshake(pki, pki.wrong_cn_client_cert, pki.wrong_cn_client_key)

    assert outcome.ok, outcome


def hsm_handshake(pki: Pki, chain: Path, key: Path) -> Outcome:
    """The simulator's host-protocol listener and the sidecar as its client."""
    server = server_context(
        pki.simulator_server_chain, pki.simulator_server_key, client_ca=pki.sim_ca_cert
    )
    client = client_context(pki.sim_ca_cert, chain=chain, key=key)
    return handshake(server, client, "localhost")


def test_sidecar_and_simulator_authenticate_each_other(pki: Pki) -> None:
    outcome = hsm_handshake(
        pki, pki.sidecar_hsm_client_cert, pki.sidecar_hsm_client_key
    )

    assert outcome.ok, outcome


def test_simulator_rejects_a_client_from_the_rogue_ca(pki: Pki) -> None:
    outcome = hsm_handshake(
        pki, pki.foreign_hsm_client_cert, pki.foreign_hsm_client_key
    )

    assert isinstance(outcome.server_error, ssl.SSLCertVerificationError)
