"""Names, extensions and key types are the ones the brief and RFC 5280 ask for."""

from __future__ import annotations

from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from fixtures.pki import Pki
from tests.pki.certs import common_name, read_cert, read_certs, san_values

E = TypeVar("E", bound=x509.ExtensionType)

CAS = {  # certificate field -> expected path length
    "public_root_cert": 1,
    "public_intermediate_cert": 0,
    "aws_root_cert": 1,
    "aws_intermediate_cert": 0,
    "sim_ca_cert": 0,
    "foreign_ca_cert": 0,
}
SERVER_LEAVES = [
    "sidecar_server_chain",
    "sidecar_server_rsa_chain",
    "simulator_server_chain",
    "wrong_san_server_chain",
]
CLIENT_LEAVES = [
    "kms_client_cert",
    "sidecar_hsm_client_cert",
    "foreign_hsm_client_cert",
    "expired_client_cert",
    "self_signed_client_cert",
    "wrong_cn_client_cert",
]
KEY_PAIRS = {  # key field -> field of the file whose first certificate it belongs to
    "sidecar_server_key": "sidecar_server_chain",
    "sidecar_server_rsa_key": "sidecar_server_rsa_chain",
    "kms_client_key": "kms_client_chain",
    "simulator_server_key": "simulator_server_chain",
    "sidecar_hsm_client_key": "sidecar_hsm_client_cert",
    "foreign_hsm_client_key": "foreign_hsm_client_cert",
    "expired_client_key": "expired_client_cert",
    "self_signed_client_key": "self_signed_client_cert",
    "wrong_cn_client_key": "wrong_cn_client_cert",
    "wrong_san_server_key": "wrong_san_server_chain",
}
ISSUED_BY = {  # leaf or CA field -> its issuer's field
    "public_intermediate_cert": "public_root_cert",
    "sidecar_server_chain": "public_intermediate_cert",
    "sidecar_server_rsa_chain": "public_intermediate_cert",
    "wrong_san_server_chain": "public_intermediate_cert",
    "aws_intermediate_cert": "aws_root_cert",
    "kms_client_chain": "aws_intermediate_cert",
    "expired_client_cert": "aws_intermediate_cert",
    "wrong_cn_client_cert": "aws_intermediate_cert",
    "simulator_server_chain": "sim_ca_cert",
    "sidecar_hsm_client_cert": "sim_ca_cert",
    "foreign_hsm_client_cert": "foreign_ca_cert",
}


def first_cert(pki: Pki, field: str) -> x509.Certificate:
    return read_certs(getattr(pki, field))[0]


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def test_sidecar_server_san_is_fqdn_localhost_and_loopback(pki: Pki) -> None:
    for chain in ("sidecar_server_chain", "sidecar_server_rsa_chain"):
        sans = san_values(first_cert(pki, chain))

        assert sans == {"xks.example.test", "localhost", "127.0.0.1"}


def test_simulator_server_san_is_localhost_and_loopback(pki: Pki) -> None:
    assert san_values(first_cert(pki, "simulator_server_chain")) == {
        "localhost",
        "127.0.0.1",
    }


def test_kms_client_cn_names_the_default_region(pki: Pki) -> None:
    cert = read_cert(pki.kms_client_cert)

    assert common_name(cert) == "cks.kms.us-east-1.amazonaws.com"
    assert san_values(cert) == {"cks.kms.us-east-1.amazonaws.com"}


@pytest.mark.parametrize("field", SERVER_LEAVES)
def test_server_leaves_allow_server_auth_only(pki: Pki, field: str) -> None:
    eku = ext(first_cert(pki, field), x509.ExtendedKeyUsage).value

    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


@pytest.mark.parametrize("field", CLIENT_LEAVES)
def test_client_leaves_allow_client_auth_only(pki: Pki, field: str) -> None:
    eku = ext(first_cert(pki, field), x509.ExtendedKeyUsage).value

    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.mark.parametrize(("field", "path_length"), CAS.items())
def test_cas_are_critical_ca_with_their_path_length(
    pki: Pki, field: str, path_length: int
) -> None:
    constraints = ext(read_cert(getattr(pki, field)), x509.BasicConstraints)

    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == path_length


@pytest.mark.parametrize("field", CAS)
def test_cas_may_sign_certificates_and_crls_only(pki: Pki, field: str) -> None:
    usage = ext(read_cert(getattr(pki, field)), x509.KeyUsage)

    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign) == (True, True)
    assert not usage.value.digital_signature


@pytest.mark.parametrize("field", SERVER_LEAVES + CLIENT_LEAVES)
def test_leaves_are_not_cas_and_only_sign(pki: Pki, field: str) -> None:
    cert = first_cert(pki, field)
    constraints = ext(cert, x509.BasicConstraints)
    usage = ext(cert, x509.KeyUsage)

    assert constraints.critical
    assert not constraints.value.ca
    assert usage.critical
    assert usage.value.digital_signature
    assert not (usage.value.key_cert_sign)
    assert not (usage.value.key_encipherment)


@pytest.mark.parametrize(("field", "issuer"), ISSUED_BY.items())
def test_authority_key_id_matches_the_issuers_subject_key_id(
    pki: Pki, field: str, issuer: str
) -> None:
    cert, issuer_cert = first_cert(pki, field), read_cert(getattr(pki, issuer))
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    ski = ext(issuer_cert, x509.SubjectKeyIdentifier).value

    assert aki.key_identifier == ski.digest
    cert.verify_directly_issued_by(issuer_cert)


@pytest.mark.parametrize(("key_field", "cert_field"), KEY_PAIRS.items())
def test_each_private_key_belongs_to_its_certificate(
    pki: Pki, key_field: str, cert_field: str
) -> None:
    pem = getattr(pki, key_field).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)

    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    assert key.public_key() == first_cert(pki, cert_field).public_key()


def test_ecdsa_server_key_is_p256(pki: Pki) -> None:
    public = read_cert(pki.sidecar_server_cert).public_key()

    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)


def test_rsa_server_key_is_2048_bits(pki: Pki) -> None:
    public = first_cert(pki, "sidecar_server_rsa_chain").public_key()

    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048
