"""mTLS: only KMS's certificate passes; every other ends in handshake_failure.

Spec, "Authentication": with mTLS on, the proxy "MUST terminate the TLS
handshake if the client presents a certificate containing a different subject
name or chained to a different certificate authority". AWS's XKS test client
(test_negative_mtls) expects a fatal handshake_failure (40) alert; these tests
read the alert the server sent from ``openssl s_client -msg``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from fixtures.pki import Pki
from sidecar.dataplane import HttpRequest, HttpResponse
from sidecar.dataplane.tls import build_server_tls
from tests.dataplane.client import ReplyReader, client_context, open_tls, raw_request
from tests.dataplane.minted import rogue_ca_client
from tests.dataplane.openssl import s_client
from tests.dataplane.servers import start_dataplane, tls_settings

KMS_CN = "cks.kms.us-east-1.amazonaws.com"
VERSIONS = ["-tls1_2", "-tls1_3"]


class Recorder:
    """A handler that remembers every request it was given."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(200, body=b"ok")


def _client_args(pki: Pki, case: str, tmp_path: Path) -> list[str]:
    if case == "rogue CA, right CN":
        rogue_chain, rogue_key = rogue_ca_client(tmp_path, KMS_CN)
        return ["-cert", str(rogue_chain), "-cert_chain", str(rogue_chain),
                "-key", str(rogue_key)]  # fmt: skip
    cases: dict[str, tuple[Path, Path, Path | None]] = {
        "expired": (pki.expired_client_cert, pki.expired_client_key,
                    pki.aws_intermediate_cert),
        "self-signed": (pki.self_signed_client_cert, pki.self_signed_client_key, None),
        "foreign CA": (pki.foreign_hsm_client_cert, pki.foreign_hsm_client_key, None),
        "wrong CN": (pki.wrong_cn_client_cert, pki.wrong_cn_client_key,
                     pki.aws_intermediate_cert),
    }  # fmt: skip
    cert, key, chain = cases[case]
    args = ["-cert", str(cert), "-key", str(key)]
    return args + (["-cert_chain", str(chain)] if chain else [])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "case", ["expired", "self-signed", "foreign CA", "rogue CA, right CN", "wrong CN"]
)
async def test_bad_client_certificate_gets_handshake_failure_alert(
    pki: Pki, nursery: trio.Nursery, tmp_path: Path, case: str, version: str
) -> None:
    handler = Recorder()
    running = await start_dataplane(nursery, pki, handler, mtls=True)

    result = await s_client(
        running.ports[0], version, *_client_args(pki, case, tmp_path)
    )

    assert result.alert_received == "handshake_failure", result.output
    assert "SSL alert number 40" in result.output
    assert result.http_status_line is None
    assert handler.requests == []


async def test_missing_client_certificate_gets_handshake_failure_in_tls12(
    pki: Pki, nursery: trio.Nursery
) -> None:
    running = await start_dataplane(nursery, pki, mtls=True)

    result = await s_client(running.ports[0], "-tls1_2")

    assert result.alert_received == "handshake_failure", result.output
    assert "SSL alert number 40" in result.output


async def test_missing_client_certificate_gets_certificate_required_in_tls13(
    pki: Pki, nursery: trio.Nursery
) -> None:
    """Known limit (sidecar/dataplane/tls_verify.py): OpenSSL sends RFC 8446's
    certificate_required (116) itself; no callback can turn it into 40."""
    running = await start_dataplane(nursery, pki, mtls=True)

    result = await s_client(running.ports[0], "-tls1_3")

    assert result.alert_received == "certificate_required", result.output
    assert result.http_status_line is None


@pytest.mark.parametrize("version", VERSIONS)
async def test_kms_client_certificate_with_chain_is_accepted(
    pki: Pki, nursery: trio.Nursery, version: str
) -> None:
    running = await start_dataplane(nursery, pki, mtls=True)
    args = ["-cert", str(pki.kms_client_cert), "-key", str(pki.kms_client_key),
            "-cert_chain", str(pki.kms_client_chain)]  # fmt: skip

    result = await s_client(running.ports[0], version, *args)

    assert result.alert_received is None, result.output
    assert result.http_status_line == "HTTP/1.1 200", result.output


async def test_handler_sees_the_verified_client_identity(
    pki: Pki, nursery: trio.Nursery
) -> None:
    handler = Recorder()
    running = await start_dataplane(nursery, pki, handler, mtls=True)
    context = client_context(pki, cert=pki.kms_client_chain, key=pki.kms_client_key)

    async with await open_tls(running.ports[0], context) as stream:
        await stream.send_all(raw_request("/x", b"{}"))
        await ReplyReader().read(stream, 1)

    tls = handler.requests[0].tls
    assert tls is not None
    assert tls.client_common_name == KMS_CN
    assert tls.protocol == "TLSv1.3"
    assert tls.cipher == "TLS_AES_256_GCM_SHA384"


async def test_rejection_is_logged_with_its_reason(
    pki: Pki, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_dataplane(nursery, pki, mtls=True)
    args = [
        "-cert", str(pki.wrong_cn_client_cert), "-key", str(pki.wrong_cn_client_key),
        "-cert_chain", str(pki.aws_intermediate_cert),
    ]  # fmt: skip

    with caplog.at_level(logging.INFO, logger="sidecar.dataplane"):
        await s_client(running.ports[0], "-tls1_3", *args)
        await trio.sleep(0.05)  # let the server task log

    rejections = [
        r.getMessage() for r in caplog.records if "rejected mTLS" in r.message
    ]
    assert len(rejections) == 1
    assert "not-kms.example.com" in rejections[0]


async def test_replaced_tls_context_applies_to_new_connections(
    pki: Pki, nursery: trio.Nursery
) -> None:
    running = await start_dataplane(nursery, pki)  # no mTLS at first
    plain_client = client_context(pki)
    async with await open_tls(running.ports[0], plain_client) as first:
        running.replace_tls(build_server_tls(tls_settings(pki, mtls=True)))

        await first.send_all(raw_request("/still-open"))
        assert (await ReplyReader().read(first, 1))[0].status == 200
        result = await s_client(running.ports[0], "-tls1_2")
        assert result.alert_received == "handshake_failure", result.output
