"""The request pipeline, in process, over a fake key manager.

Each test builds an ``HttpRequest`` as the data plane would hand it over,
signed by botocore, and checks the answer and the request's one audit line.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sidecar.audit import AUDIT_LOGGER_NAME, JsonLineFormatter
from sidecar.dataplane.messages import HttpRequest, HttpResponse, TlsInfo
from sidecar.handler import Keystore, XksHandler
from sidecar.xks.policy import Effect, Policy, Rule
from sidecar.xks.responses import EkmNode, HealthStatusResponse
from sidecar.xks.sigv4 import Credential, Secret, SigV4Verifier
from tests.sidecar_app.conftest import (
    ACCESS_KEY_ID,
    REGION,
    SECRET,
    FakeKeyManager,
    Signed,
    sign,
)

PATH = "/dev/kms/xks/v1"
PRINCIPAL = "arn:aws:iam::111122223333:user/alice"
KMS_CN = "cks.kms.us-east-1.amazonaws.com"
SEALED_FIELDS = (
    "ciphertext",
    "ciphertextMetadata",
    "initializationVector",
    "authenticationTag",
)
HEALTH = HealthStatusResponse(
    1, "Futurex", "CryptoHub", "Futurex", (EkmNode("n1", "m", "ACTIVE"),)
)


async def report_health() -> HealthStatusResponse:
    return HEALTH


def handler_for(backend: FakeKeyManager, policy: Policy | None = None) -> XksHandler:
    verifier = SigV4Verifier([Credential(ACCESS_KEY_ID, Secret(SECRET))], region=REGION)
    keystore = Keystore(
        "dev", PATH, verifier, policy or Policy(), backend, report_health
    )
    return XksHandler([keystore])


@pytest.fixture
def backend() -> FakeKeyManager:
    fake = FakeKeyManager()
    fake.add("foo")
    return fake


AuditLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def audit_lines(caplog: pytest.LogCaptureFixture) -> AuditLines:
    """The audit lines written so far, as the JSON log format renders them."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER_NAME)
    formatter = JsonLineFormatter()

    def lines() -> list[dict[str, Any]]:
        records = [r for r in caplog.records if r.name == AUDIT_LOGGER_NAME]
        return [json.loads(formatter.format(record)) for record in records]

    return lines


def request(
    path: str,
    body: dict[str, Any] | bytes,
    *,
    method: str = "POST",
    headers: Signed | None = None,
) -> HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpRequest(
        method=method,
        raw_path=path,
        headers=tuple(headers if headers is not None else sign(path, raw)),
        body=raw,
        http_version="1.1",
        peer=("192.0.2.7", 50000),
        tls=TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", f"CN={KMS_CN}", KMS_CN),
    )


def metadata(operation: str = "Encrypt", request_id: str = "req-1") -> dict[str, str]:
    return {
        "kmsRequestId": request_id,
        "kmsOperation": operation,
        "awsPrincipalArn": PRINCIPAL,
        "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/k",
    }


def encrypt_body(plaintext: bytes, aad: bytes) -> dict[str, Any]:
    return {
        "requestMetadata": metadata(),
        "plaintext": base64.b64encode(plaintext).decode(),
        "additionalAuthenticatedData": base64.b64encode(aad).decode(),
        "encryptionAlgorithm": "AES_GCM",
    }


def reply(response: HttpResponse) -> dict[str, Any]:
    assert (b"content-type", b"application/json") in response.headers
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return document


async def test_encrypt_then_decrypt_round_trips_and_logs_one_line_each(
    backend: FakeKeyManager, audit_lines: AuditLines
) -> None:
    handler = handler_for(backend)
    sealed = reply(
        await handler(request(f"{PATH}/keys/foo/encrypt", encrypt_body(b"hi", b"ctx")))
    )
    decrypt = {
        "requestMetadata": metadata("Decrypt", "req-2"),
        "encryptionAlgorithm": "AES_GCM",
        "additionalAuthenticatedData": base64.b64encode(b"ctx").decode(),
        **{k: sealed[k] for k in SEALED_FIELDS},
    }

    opened = await handler(request(f"{PATH}/keys/foo/decrypt", decrypt))

    assert opened.status == 200
    assert base64.b64decode(reply(opened)["plaintext"]) == b"hi"
    assert [(line["kmsRequestId"], line["outcome"]) for line in audit_lines()] == [
        ("req-1", "ok"),
        ("req-2", "ok"),
    ]
    line = audit_lines()[0]
    assert line["keystore"] == "dev"
    assert line["operation"] == "encrypt"
    assert line["external_key_id"] == "foo"
    assert line["awsPrincipalArn"] == PRINCIPAL
    assert line["kmsOperation"] == "Encrypt"
    assert line["status"] == 200
    assert line["access_key_id"] == ACCESS_KEY_ID
    assert line["tls_client_cn"] == KMS_CN
    assert line["latency_ms"] >= 0


async def test_health_answers_from_the_reporter(backend: FakeKeyManager) -> None:
    body = {"requestMetadata": {"kmsRequestId": "h", "kmsOperation": "KmsHealthCheck"}}

    response = await handler_for(backend)(request(f"{PATH}/health", body))

    assert response.status == 200
    assert response.body == HEALTH.to_json()


async def test_bad_signature_gets_a_generic_401_and_the_cause_is_logged(
    backend: FakeKeyManager, audit_lines: AuditLines
) -> None:
    path = f"{PATH}/keys/foo/encrypt"
    body = json.dumps(encrypt_body(b"x", b"")).encode()
    headers = sign(path, body, secret="not-the-secret")

    response = await handler_for(backend)(request(path, body, headers=headers))

    assert response.status == 401
    assert reply(response) == {
        "errorName": "AuthenticationFailedException",
        "errorMessage": "The request was rejected due to invalid AWS SigV4 signature.",
    }
    (line,) = audit_lines()
    assert line["reason"] == "signature mismatch"
    assert line["outcome"] == "AuthenticationFailedException"


async def test_get_on_an_api_uri_is_405_with_allow_post(
    backend: FakeKeyManager,
) -> None:
    response = await handler_for(backend)(request(f"{PATH}/health", b"", method="GET"))

    assert response.status == 405
    assert (b"allow", b"POST") in response.headers


async def test_unknown_path_is_invalid_uri_path(backend: FakeKeyManager) -> None:
    response = await handler_for(backend)(request("/other/kms/xks/v1/health", {}))

    assert response.status == 404
    assert reply(response)["errorName"] == "InvalidUriPathException"


async def test_invalid_body_is_a_validation_exception_naming_the_field(
    backend: FakeKeyManager,
) -> None:
    body = {"requestMetadata": metadata(), "encryptionAlgorithm": "AES_GCM"}

    response = await handler_for(backend)(request(f"{PATH}/keys/foo/encrypt", body))

    assert response.status == 400
    assert reply(response) == {
        "errorName": "ValidationException",
        "errorMessage": "plaintext is required",
    }


async def test_policy_denial_is_403_and_the_log_names_the_rule(
    backend: FakeKeyManager, audit_lines: AuditLines
) -> None:
    policy = Policy((Rule.create("no-alice", Effect.DENY, principals=[PRINCIPAL]),))
    handler = handler_for(backend, policy)

    response = await handler(
        request(f"{PATH}/keys/foo/encrypt", encrypt_body(b"x", b""))
    )

    assert response.status == 403
    assert reply(response)["errorName"] == "AccessDeniedException"
    assert audit_lines()[0]["reason"] == "denied by policy: no-alice"


async def test_unexpected_error_is_internal_exception_with_one_traceback(
    backend: FakeKeyManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    response = await handler_for(backend)(
        request(f"{PATH}/keys/boom/encrypt", encrypt_body(b"x", b""))
    )

    assert response.status == 500
    assert reply(response)["errorName"] == "InternalException"
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert "a bug deep in a backend" not in response.body.decode()


async def test_the_log_holds_no_plaintext_aad_ciphertext_secret_or_signature(
    backend: FakeKeyManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sidecar")
    plaintext, aad = b"PLAINTEXT-canary-7f3a9c", b"AAD-canary-51be02"
    handler = handler_for(backend)
    path = f"{PATH}/keys/foo/encrypt"
    encrypt = request(path, encrypt_body(plaintext, aad))
    sealed = reply(await handler(encrypt))
    tampered = {**sealed, "authenticationTag": base64.b64encode(bytes(16)).decode()}
    decrypt = {
        "requestMetadata": metadata("Decrypt"),
        "encryptionAlgorithm": "AES_GCM",
        "additionalAuthenticatedData": base64.b64encode(aad).decode(),
        **{k: tampered[k] for k in SEALED_FIELDS},
    }
    await handler(request(f"{PATH}/keys/foo/decrypt", decrypt))
    await handler(request(path, b"{not json", headers=sign(path, b"{not json")))

    formatter = JsonLineFormatter()
    # Everything the sidecar logged (botocore, on the test's side, logs the
    # signature it computes at DEBUG: not ours to judge).
    ours = [r for r in caplog.records if r.name.startswith("sidecar")]
    output = "\n".join(formatter.format(record) for record in ours)
    authorization = dict(encrypt.headers)[b"authorization"].decode()
    forbidden = [
        plaintext.decode(),
        base64.b64encode(plaintext).decode(),
        aad.decode(),
        base64.b64encode(aad).decode(),
        sealed["ciphertext"],
        sealed["authenticationTag"],
        SECRET,
        authorization,
        authorization.rsplit("Signature=", 1)[1],
    ]
    assert output  # the lines were captured at all
    assert [value for value in forbidden if value in output] == []
