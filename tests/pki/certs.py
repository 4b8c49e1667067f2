"""Reading and verifying the minted certificates, for the PKI tests."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    PolicyBuilder,
    ServerVerifier,
    Store,
)


def read_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def read_cert(path: Path) -> x509.Certificate:
    (cert,) = read_certs(path)
    return cert


def server_verifier(
    root: Path, hostname: str, *, at: datetime | None = None
) -> ServerVerifier:
    return _policy(root, at).build_server_verifier(_subject(hostname))


def client_verifier(root: Path, *, at: datetime | None = None) -> ClientVerifier:
    return _policy(root, at).build_client_verifier()


def verify_chain(verifier: ServerVerifier | ClientVerifier, chain_file: Path) -> None:
    """Verify a PEM file holding the leaf first, then its intermediates."""
    leaf, *intermediates = read_certs(chain_file)
    verifier.verify(leaf, intermediates)


def common_name(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def san_values(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {str(name) for name in san.get_values_for_type(x509.DNSName)}
    return names | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def _policy(root: Path, at: datetime | None) -> PolicyBuilder:
    builder = PolicyBuilder().store(Store(read_certs(root)))
    return builder if at is None else builder.time(at)


def _subject(hostname: str) -> DNSName | IPAddress:
    try:
        return IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return DNSName(hostname)
