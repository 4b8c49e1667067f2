"""Responses are classified as KMS reads them: ok, by errorName, or invalid."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest

from fixtures.pki import Pki
from sidecar.bench.outcome import OK, Kind, Outcome, classify
from sidecar.bench.payloads import Body, Caller, Expectation, Operation, encrypt_body
from sidecar.bench.runner import run_bench
from tests.bench_tool.conftest import RunningProxy
from tests.bench_tool.helpers import settings_for

CALLER = Caller("/kms/xks/v1", "foo", "arn:aws:iam::111122223333:user/a", "arn:k")
AAD = b"context"
IV, TAG, METADATA = b"i" * 12, b"t" * 16, b"\x01\x00\x00\x00\x01"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encrypt_reply(ciphertext: bytes, **changes: object) -> bytes:
    cdiv = hashlib.sha256(AAD + METADATA + IV + ciphertext + TAG).digest()
    doc: dict[str, object] = {
        "ciphertext": b64(ciphertext),
        "ciphertextMetadata": b64(METADATA),
        "initializationVector": b64(IV),
        "authenticationTag": b64(TAG),
        "ciphertextDataIntegrityValue": b64(cdiv),
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


SENT_ENCRYPT = encrypt_body(CALLER, b"k" * 32, AAD, Operation.ENCRYPT)
SENT_DECRYPT = Body(
    Operation.DECRYPT, "/d", b"{}", Expectation(plaintext_b64=b64(b"k" * 32))
)


@pytest.mark.parametrize(
    ("status", "body", "name"),
    [
        (400, b'{"errorName":"ValidationException"}', "ValidationException"),
        (
            429,
            b'{"errorName":"ThrottlingException","errorMessage":"slow"}',
            "ThrottlingException",
        ),
        (
            503,
            b'{"errorName":"DependencyTimeoutException"}',
            "DependencyTimeoutException",
        ),
    ],
)
def test_an_error_counts_by_its_error_name(status: int, body: bytes, name: str) -> None:
    assert classify(status, body, SENT_ENCRYPT) == Outcome(Kind.ERROR, name)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502</html>",
        b"[]",
        b'{"errorName": 7}',
        b'{"errorName":"a b\\n"}',
        b"\xff",
    ],
)
def test_an_error_without_a_usable_error_name_is_an_invalid_response(
    body: bytes,
) -> None:
    outcome = classify(502, body, SENT_ENCRYPT)

    assert outcome.kind is Kind.INVALID
    assert "502" in outcome.detail


def test_a_correct_encrypt_answer_is_ok() -> None:
    assert classify(200, encrypt_reply(b"c" * 32), SENT_ENCRYPT) == OK


@pytest.mark.parametrize(
    "reply",
    [
        encrypt_reply(b"c" * 31),  # ciphertext shorter than the plaintext
        encrypt_reply(b"c" * 32, ciphertextDataIntegrityValue=b64(b"x" * 32)),
        encrypt_reply(b"c" * 32, ciphertextDataIntegrityValue=None),
        encrypt_reply(b"c" * 32, authenticationTag=b64(b"t" * 12)),
        encrypt_reply(b"c" * 32, ciphertextMetadata=b64(b"m" * 21)),
        encrypt_reply(b"c" * 32, initializationVector="not base64!"),
        b"not json",
    ],
)
def test_a_200_encrypt_answer_kms_would_reject_is_invalid(reply: bytes) -> None:
    assert classify(200, reply, SENT_ENCRYPT).kind is Kind.INVALID


def test_a_decrypt_must_return_the_original_plaintext() -> None:
    right = json.dumps({"plaintext": b64(b"k" * 32)}).encode()
    wrong = json.dumps({"plaintext": b64(b"K" * 32)}).encode()

    assert classify(200, right, SENT_DECRYPT) == OK
    assert classify(200, wrong, SENT_DECRYPT).kind is Kind.INVALID


async def test_a_run_reports_errors_by_error_name_over_tls(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    fake_proxy.proxy.error_names = {"decrypt": "ThrottlingException"}
    settings = settings_for(
        fake_proxy.port, pki, rate=40.0, duration=0.5, warmup=5, target_rate=40.0
    )

    report = await run_bench(settings, None)

    errors = report["outcomes"]["errors"]
    assert errors["by_detail"] == {"ThrottlingException": errors["total"]}
    assert errors["total"] == report["latency_ms_by_operation"]["decrypt"]["count"] > 0
    assert report["outcomes"]["ok"] == report["requests"]["completed"] - errors["total"]
    assert report["status"] == "FAIL"


async def test_a_wrong_secret_shows_as_authentication_failures(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    settings = settings_for(
        fake_proxy.port, pki, rate=20.0, duration=0.2, mix="health=1", warmup=0
    )
    settings = dataclasses.replace(settings, access_key_id="SOMEONEELSE")

    report = await run_bench(settings, None)

    assert report["outcomes"]["errors"]["by_detail"] == {
        "AuthenticationFailedException": 4
    }
