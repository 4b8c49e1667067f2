"""mTLS client certificate verification that fails with handshake_failure.

Spec, "Authentication": under mTLS the proxy "MUST terminate the TLS handshake
if the client presents a certificate containing a different subject name or
chained to a different certificate authority". AWS's XKS proxy test client
sends expired and self-signed certificates and expects a fatal
``handshake_failure`` (40) alert.

Why a hand-made cffi callback rather than ``Context.set_verify``:

* OpenSSL turns the verification error it holds when the callback returns 0
  into the alert (``ssl_x509err2alert``): an expired certificate gives
  ``certificate_expired``, an unknown issuer ``unknown_ca``, and so on.
  pyOpenSSL's ``set_verify`` wrapper returns 0 and keeps OpenSSL's own error,
  and Python's ``ssl`` module offers no callback at all.
* OpenSSL maps ``X509_V_ERR_APPLICATION_VERIFICATION`` to
  ``handshake_failure``. So our callback sets that error on every rejection,
  whatever the cause; the cause goes to our log only. This holds in TLS 1.2
  and TLS 1.3 (tests/dataplane/test_mtls.py checks both on the wire).
* The subject check happens here, inside the handshake (depth 0 is the
  leaf), so a wrong CN never completes a handshake.

A client that sends no certificate never reaches a verify callback. OpenSSL
then ends the handshake itself: ``handshake_failure`` in TLS 1.2, but in TLS
1.3 the ``certificate_required`` (116) alert that RFC 8446 section 4.4.2.4
prescribes. TODO: OpenSSL has no hook between an empty TLS 1.3 Certificate
message and that alert, so a certificate-less TLS 1.3 client sees 116, not 40;
AWS's test client does not exercise that case.

This module uses pyOpenSSL's private cffi handles (``OpenSSL._util``), the
same ones pyOpenSSL's own verify helper uses; a pyOpenSSL upgrade must re-run
tests/dataplane/test_mtls.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL._util import ffi, lib
from OpenSSL.crypto import X509

logger = logging.getLogger("sidecar.dataplane.tls")

_CALLBACK_SIGNATURE = "int (*)(int, X509_STORE_CTX *)"


@dataclass(slots=True)
class HandshakeNotes:
    """Per-connection scratch space the callback writes its verdict into.

    Attached to the ``SSL.Connection`` as app data, so the connection can log
    one line that names both the peer and the reason for a rejection.
    """

    rejection: str | None = None


class ClientCertificateVerifier:
    """Accepts a client chain only if it is valid and its leaf CN matches.

    Chain validity (trust anchor in the configured CA bundle, dates,
    signatures, key usage for TLS clients) is OpenSSL's verdict, passed in as
    ``preverify_ok``; this class adds the subject rule and the alert choice.
    """

    def __init__(self, expected_common_name: str) -> None:
        self._expected = expected_common_name
        # cffi frees a callback when its Python object dies; the verifier must
        # outlive every SSL_CTX it is installed on (``ServerTls`` holds both).
        self._callback = ffi.callback(_CALLBACK_SIGNATURE, self._verify)

    def install(self, context: SSL.Context) -> None:
        """Require a client certificate on ``context`` and verify it here."""
        mode = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        lib.SSL_CTX_set_verify(context._context, mode, self._callback)

    def _verify(self, preverify_ok: int, store: Any) -> int:
        try:
            rejection = self._rejection(preverify_ok, store)
        except Exception:  # a cffi callback must never raise: reject instead
            logger.exception("client certificate check crashed; rejecting")
            rejection = "internal error while checking the certificate"
        if rejection is None:
            return 1

        _note_rejection(store, rejection)
        lib.X509_STORE_CTX_set_error(store, lib.X509_V_ERR_APPLICATION_VERIFICATION)
        return 0

    def _rejection(self, preverify_ok: int, store: Any) -> str | None:
        depth = lib.X509_STORE_CTX_get_error_depth(store)
        if not preverify_ok:
            code = lib.X509_STORE_CTX_get_error(store)
            text = ffi.string(lib.X509_verify_cert_error_string(code)).decode()
            return f"{text} (depth {depth})"
        if depth != 0:
            return None

        names = _common_names(lib.X509_STORE_CTX_get_current_cert(store))
        if names != [self._expected]:
            return f"subject CN {names!r} is not {self._expected!r}"
        return None


def _common_names(x509_ptr: Any) -> list[str]:
    # _from_raw_x509_ptr takes ownership of one reference; the store keeps its
    # own, hence the up_ref first (as pyOpenSSL's verify helper does).
    lib.X509_up_ref(x509_ptr)
    certificate = X509._from_raw_x509_ptr(x509_ptr).to_cryptography()
    attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [str(attribute.value) for attribute in attributes]


def _note_rejection(store: Any, rejection: str) -> None:
    index = lib.SSL_get_ex_data_X509_STORE_CTX_idx()
    ssl_ptr = lib.X509_STORE_CTX_get_ex_data(store, index)
    connection = SSL.Connection._reverse_mapping.get(ssl_ptr)
    notes = connection.get_app_data() if connection is not None else None
    if isinstance(notes, HandshakeNotes):
        notes.rejection = rejection
