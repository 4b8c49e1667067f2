"""The client side of TLS, as KMS would connect to the proxy.

Spec, Authentication: the proxy is reached over HTTPS with standard server
authentication (the certificate must match the endpoint's name) and, if it
asks, KMS presents a client certificate (mTLS). So: TLS 1.2 or newer,
certificate verification always on (there is no switch to turn it off: a
load test that skips verification measures a set-up KMS would refuse),
trust in the given CA file or else the system store, and an optional client
certificate and key. ALPN offers only http/1.1, the protocol we speak.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsSetupError(Exception):
    """A CA, certificate or key file could not be loaded."""


def client_context(
    ca_file: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> ssl.SSLContext:
    """A verifying client context; raises TlsSetupError naming the file."""
    try:
        context = ssl.create_default_context(
            cafile=None if ca_file is None else str(ca_file)
        )
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot load CA file {ca_file}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The connections' TLS stream (sidecar.client_tls) cannot serve a
    # renegotiation, where a read must wait for a write; TLS 1.3 has none,
    # and HTTP/1.1 to an XKS proxy never needs one under TLS 1.2.
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    if client_cert is not None:
        _load_client_cert(context, client_cert, client_key)
    elif client_key is not None:
        raise TlsSetupError("a client key was given without a client certificate")
    return context


def _load_client_cert(context: ssl.SSLContext, cert: Path, key: Path | None) -> None:
    try:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(
            f"cannot load client certificate {cert} / key {key}: {exc}"
        ) from exc
