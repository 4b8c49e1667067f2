"""TLS versions and cipher suites on the data plane (spec, "API content type").

"TLS 1.2 or later with at least one of these cipher suites:
TLS_AES_256_GCM_SHA384 (TLS 1.3), TLS_CHACHA20_POLY1305_SHA256 (TLS 1.3),
TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (TLS 1.2),
TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 (TLS 1.2)"; the Futurex CryptoHub
guide allows exactly those. The development server certificate is ECDSA, so
the ECDHE-RSA suite cannot be negotiated here (the data plane's own tests
cover it with the RSA certificate). Refusals are checked as the alert the
server sent, so they cannot pass because the client gave up.
"""

from __future__ import annotations

import ssl

import pytest

from tests.e2e.http_wire import expect_ok
from tests.e2e.stack import Stack
from tests.e2e.tls_connection import kms_tls
from tests.e2e.tools import s_client
from tests.e2e.xks_client import open_client

ACCEPTED = [
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"),
    ("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"),
]

REFUSED_SUITES = [
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"),  # CBC
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"),  # CBC
    ("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ("-tls1_2", "-cipher", "AES256-GCM-SHA384"),  # no forward secrecy
    ("-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"),
]


@pytest.mark.parametrize("args", ACCEPTED, ids=[a[2] for a in ACCEPTED])
async def test_spec_suite_is_negotiated_and_served(
    stack: Stack, args: tuple[str, ...]
) -> None:
    pki = stack.pki
    result = await s_client(
        stack, *args, cert=pki.kms_client_cert, key=pki.kms_client_key
    )

    assert result.cipher == args[2], result.output
    assert result.fatal_alert() is None, result.output
    assert result.http_status == 405, result.output


@pytest.mark.parametrize("args", REFUSED_SUITES, ids=[a[2] for a in REFUSED_SUITES])
async def test_other_suite_is_refused_by_the_server(
    stack: Stack, args: tuple[str, ...]
) -> None:
    pki = stack.pki
    result = await s_client(
        stack, *args, cert=pki.kms_client_cert, key=pki.kms_client_key
    )

    assert result.fatal_alert() == "handshake_failure", result.output
    assert result.http_status is None, result.output


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
async def test_protocol_older_than_tls12_is_refused_by_the_server(
    stack: Stack, version: str
) -> None:
    pki = stack.pki
    # SECLEVEL 0 so that OpenSSL 3 really offers the old protocol.
    result = await s_client(
        stack, version, "-cipher", "DEFAULT:@SECLEVEL=0",
        cert=pki.kms_client_cert, key=pki.kms_client_key,
    )  # fmt: skip

    assert result.fatal_alert() == "protocol_version", result.output
    assert result.http_status is None, result.output


@pytest.mark.parametrize(
    ("version", "ciphers"),
    [
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384"),
        (ssl.TLSVersion.TLSv1_3, None),
    ],
    ids=["tls1.2", "tls1.3"],
)
async def test_signed_xks_call_works_over_each_tls_version(
    stack: Stack, version: ssl.TLSVersion, ciphers: str | None
) -> None:
    tls = kms_tls(stack, version=version, ciphers=ciphers)

    async with open_client(stack, tls=tls) as xks:
        expect_ok(await xks.health())
        assert xks.connection is not None
        negotiated = (xks.connection.tls_version, xks.connection.cipher)

    expected_cipher = ciphers or "TLS_AES_256_GCM_SHA384"
    assert negotiated == (version.name.replace("_", "."), expected_cipher)
