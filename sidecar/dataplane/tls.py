"""The data plane's TLS server policy, built into one pyOpenSSL context.

Spec, "API content type": the proxy "MUST support HTTP/1.1 or later and TLS
1.2 or later with at least one of these cipher suites"; Futurex's CryptoHub
XKS guide narrows the proxy to exactly those suites. So:

* TLS 1.2 minimum; nothing older is negotiable.
* TLS 1.2 suites: ECDHE-ECDSA-AES256-GCM-SHA384 and ECDHE-RSA-AES256-GCM-SHA384
  (which one applies depends on the server key type).
* TLS 1.3 suites: TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256.
* The server's preference order wins; no compression (CRIME); no
  renegotiation (a client could otherwise restart the costly handshake at
  will, and renegotiation has a history of attacks).
* No session resumption: no tickets, no session cache. KMS keeps connections
  alive, so full handshakes are rare; ticket keys would be long-lived secrets
  shared by nothing (each worker process draws its own), and a resumed
  session would skip re-checking an mTLS client certificate.
* The server sends its full chain, from the configured chain file.

``build_server_tls`` is the only constructor: reloading certificates means
calling it again and handing the new ``ServerTls`` to the running listener,
which uses it for connections accepted from then on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL

from sidecar.dataplane.settings import MutualTlsSettings, TlsSettings
from sidecar.dataplane.tls_verify import ClientCertificateVerifier

TLS12_CIPHERS = b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
TLS13_CIPHERSUITES = b"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

_OPTIONS = (
    SSL.OP_NO_COMPRESSION
    | SSL.OP_NO_RENEGOTIATION
    | SSL.OP_CIPHER_SERVER_PREFERENCE
    | SSL.OP_NO_TICKET
    # A peer that closes TCP without close_notify is treated as a clean EOF:
    # HTTP framing (Content-Length) already detects a truncated request.
    | SSL.OP_IGNORE_UNEXPECTED_EOF
)
# Leaf, intermediate(s), root: Amazon Trust Services chains are short.
_MAX_CLIENT_CHAIN_DEPTH = 4


class TlsConfigError(Exception):
    """The certificate, key or CA files cannot make a working context."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A ready server context and what must stay alive with it."""

    context: SSL.Context
    verifier: ClientCertificateVerifier | None  # holds the cffi callback
    handshake_timeout: float

    @property
    def requires_client_certificate(self) -> bool:
        return self.verifier is not None


def build_server_tls(settings: TlsSettings) -> ServerTls:
    """Build the server context from files; raise TlsConfigError if unusable."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    _apply_policy(context)
    try:
        _load_identity(context, settings)
        verifier = _require_client_certificates(context, settings.mutual_tls)
    except (OSError, ValueError, TypeError, SSL.Error) as exc:
        raise TlsConfigError(f"cannot build the TLS server context: {exc}") from exc
    return ServerTls(context, verifier, settings.handshake_timeout)


def _apply_policy(context: SSL.Context) -> None:
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(TLS12_CIPHERS)
    context.set_tls13_ciphersuites(TLS13_CIPHERSUITES)
    context.set_options(_OPTIONS)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.set_session_id(b"xks-dataplane")


def _load_identity(context: SSL.Context, settings: TlsSettings) -> None:
    context.use_certificate_chain_file(str(settings.certificate_chain))
    context.use_privatekey(_load_private_key(settings))
    context.check_privatekey()


def _load_private_key(
    settings: TlsSettings,
) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    pem = settings.private_key.read_bytes()
    key = load_pem_private_key(pem, password=_key_passphrase(settings))
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"{settings.private_key}: key must be ECDSA or RSA")
    return key


def _key_passphrase(settings: TlsSettings) -> bytes | None:
    if settings.key_passphrase_file is not None:
        return settings.key_passphrase_file.read_bytes().rstrip(b"\r\n")
    if settings.key_passphrase_env is not None:
        value = os.environ.get(settings.key_passphrase_env)
        if value is None:
            raise ValueError(
                f"environment variable {settings.key_passphrase_env} unset"
            )
        return value.encode()
    return None


def _require_client_certificates(
    context: SSL.Context, mutual_tls: MutualTlsSettings | None
) -> ClientCertificateVerifier | None:
    if mutual_tls is None:
        return None

    context.load_verify_locations(str(mutual_tls.ca_bundle))
    context.set_verify_depth(_MAX_CLIENT_CHAIN_DEPTH)
    for authority in _read_certificates(mutual_tls.ca_bundle):
        # Named in CertificateRequest, so a client holding several
        # certificates picks the one these authorities issued.
        context.add_client_ca(authority)
    verifier = ClientCertificateVerifier(mutual_tls.client_common_name)
    verifier.install(context)
    return verifier


def _read_certificates(path: Path) -> list[x509.Certificate]:
    certificates = x509.load_pem_x509_certificates(path.read_bytes())
    if not certificates:
        raise ValueError(f"{path}: no certificate found")
    return certificates
