"""The TLS policy on the wire, as ``openssl s_client`` sees it.

Spec, "API content type": TLS 1.2 or later; the Futurex CryptoHub guide
narrows the suites to exactly two per protocol version (see sidecar/
dataplane/tls.py).
"""

from __future__ import annotations

import pytest
import trio

from fixtures.pki import Pki
from tests.dataplane.openssl import require_openssl, s_client
from tests.dataplane.servers import start_dataplane


@pytest.mark.parametrize(
    ("rsa", "args", "cipher"),
    [
        (False, ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"),
         "ECDHE-ECDSA-AES256-GCM-SHA384"),
        (True, ("-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"),
         "ECDHE-RSA-AES256-GCM-SHA384"),
        (False, ("-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"),
         "TLS_AES_256_GCM_SHA384"),
        (False, ("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"),
         "TLS_CHACHA20_POLY1305_SHA256"),
    ],
    ids=["tls12-ecdsa", "tls12-rsa", "tls13-aes256", "tls13-chacha20"],
)  # fmt: skip
async def test_each_allowed_suite_connects_and_serves(
    pki: Pki, nursery: trio.Nursery, rsa: bool, args: tuple[str, ...], cipher: str
) -> None:
    running = await start_dataplane(nursery, pki, rsa=rsa)

    result = await s_client(running.ports[0], *args)

    assert result.cipher == cipher, result.output
    assert result.http_status_line == "HTTP/1.1 200", result.output


@pytest.mark.parametrize(
    ("rsa", "args"),
    [
        (True, ("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")),
        (False, ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")),
        (False, ("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305")),
        (True, ("-tls1_2", "-cipher", "AES256-GCM-SHA384")),  # no forward secrecy
        (False, ("-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256")),
    ],
    ids=["tls12-rsa-aes128", "tls12-ecdsa-aes128", "tls12-chacha20",
         "tls12-static-rsa", "tls13-aes128"],
)  # fmt: skip
async def test_disallowed_suite_is_refused_by_the_server(
    pki: Pki, nursery: trio.Nursery, rsa: bool, args: tuple[str, ...]
) -> None:
    running = await start_dataplane(nursery, pki, rsa=rsa)

    result = await s_client(running.ports[0], *args)

    assert result.alert_received == "handshake_failure", result.output
    assert result.http_status_line is None


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
async def test_protocols_older_than_tls12_are_refused_by_the_server(
    pki: Pki, nursery: trio.Nursery, version: str
) -> None:
    running = await start_dataplane(nursery, pki)

    # SECLEVEL=0 so that the client really offers the old protocol.
    result = await s_client(running.ports[0], version, "-cipher", "DEFAULT:@SECLEVEL=0")

    assert result.alert_received == "protocol_version", result.output
    assert result.http_status_line is None


async def test_server_preference_decides_the_tls13_suite(
    pki: Pki, nursery: trio.Nursery
) -> None:
    running = await start_dataplane(nursery, pki)
    client_order = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

    result = await s_client(running.ports[0], "-tls1_3", "-ciphersuites", client_order)

    assert result.cipher == "TLS_AES_256_GCM_SHA384", result.output


async def test_server_sends_its_full_chain_which_verifies_without_compression(
    pki: Pki, nursery: trio.Nursery
) -> None:
    running = await start_dataplane(nursery, pki)

    result = await s_client(
        running.ports[0], "-showcerts", "-verify_return_error",
        "-CAfile", str(pki.public_root_cert), "-verify_hostname", "localhost",
    )  # fmt: skip

    assert result.output.count("-----BEGIN CERTIFICATE-----") == 2, result.output
    assert "Verify return code: 0 (ok)" in result.output
    assert "Compression: NONE" in result.output
    assert result.http_status_line == "HTTP/1.1 200"


async def test_client_renegotiation_is_refused(pki: Pki, nursery: trio.Nursery) -> None:
    running = await start_dataplane(nursery, pki)
    command = [
        require_openssl(), "s_client", "-connect", f"127.0.0.1:{running.ports[0]}",
        "-tls1_2", "-msg",
    ]  # fmt: skip

    # s_client renegotiates when it reads a line "R" on stdin.
    with trio.fail_after(20):
        done = await trio.run_process(
            command, stdin=b"R\n", capture_stdout=True, capture_stderr=True,
            check=False,
        )  # fmt: skip

    output = done.stdout.decode() + done.stderr.decode()
    assert "RENEGOTIATING" in output
    assert "<<< TLS 1.2, Alert [length 0002], warning no_renegotiation" in output
