"""Client certificates on the data plane (spec, "Authentication").

Under mTLS the proxy "MUST terminate the TLS handshake if the client presents
a certificate containing a different subject name or chained to a different
certificate authority"; KMS presents CN ``cks.kms.<Region>.amazonaws.com``
chained to Amazon Trust Services (here: the PKI's stand-in). AWS's XKS test
client expects the fatal alert handshake_failure (40) for every rejection,
so each case checks that alert as the server sent it, read from
``openssl s_client -msg`` (``<<<`` lines), in TLS 1.2 and TLS 1.3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.pki import Pki
from tests.e2e.stack import Stack
from tests.e2e.tools import SClient, s_client

HANDSHAKE_FAILURE = 40
VERSIONS = ["-tls1_2", "-tls1_3"]

BAD_CERTIFICATES = {
    "expired": ("expired_client_cert", "expired_client_key"),
    "self-signed": ("self_signed_client_cert", "self_signed_client_key"),
    "foreign-ca": ("foreign_hsm_client_cert", "foreign_hsm_client_key"),
    "wrong-cn": ("wrong_cn_client_cert", "wrong_cn_client_key"),
}


def _pair(pki: Pki, names: tuple[str, str]) -> tuple[Path, Path]:
    cert, key = (getattr(pki, name) for name in names)
    assert isinstance(cert, Path)
    assert isinstance(key, Path)
    return cert, key


def _assert_refused_with_handshake_failure(result: SClient) -> None:
    assert result.fatal_alert() == "handshake_failure", result.output
    assert result.fatal_alert_code() == HANDSHAKE_FAILURE, result.output
    assert result.http_status is None, result.output


@pytest.mark.parametrize("version", VERSIONS)
async def test_kms_client_certificate_is_accepted(stack: Stack, version: str) -> None:
    result = await s_client(
        stack, version, cert=stack.pki.kms_client_cert, key=stack.pki.kms_client_key
    )

    assert result.fatal_alert() is None, result.output
    # Served: a GET on the health URI is answered 405 (spec, "API operations").
    assert result.http_status == 405, result.output


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(BAD_CERTIFICATES))
async def test_bad_client_certificate_ends_the_handshake_with_handshake_failure(
    stack: Stack, version: str, case: str
) -> None:
    cert, key = _pair(stack.pki, BAD_CERTIFICATES[case])

    result = await s_client(stack, version, cert=cert, key=key)

    _assert_refused_with_handshake_failure(result)


async def test_no_client_certificate_ends_a_tls12_handshake_with_handshake_failure(
    stack: Stack,
) -> None:
    result = await s_client(stack, "-tls1_2")

    _assert_refused_with_handshake_failure(result)


async def test_no_client_certificate_in_tls13_is_refused_before_any_request(
    stack: Stack,
) -> None:
    # Known gap: OpenSSL answers a TLS 1.3 client that sends no certificate
    # with certificate_required (116), as RFC 8446 section 4.4.2.4 says, and
    # has no hook to make it handshake_failure (TODO in sidecar/dataplane/
    # tls_verify.py). AWS's test client does not try this case. What must hold
    # regardless: a fatal alert from the server and no request served.
    result = await s_client(stack, "-tls1_3")

    assert result.fatal_alert() in {"handshake_failure", "certificate_required"}, (
        result.output
    )
    assert result.http_status is None, result.output
