"""The SigV4 verifier's per-request shortcuts decide exactly as a full check.

The verifier remembers a parsed Authorization header (less its signature),
the last x-amz-date that passed, and canonical URIs; these tests pin that a
remembered result never outlives what it depended on, and that repeated
headers take the same way as before.
"""

from __future__ import annotations

import pytest

from sidecar.xks.sigv4 import Credential, Secret, SigV4Verifier
from tests.sidecar.test_sigv4 import (
    AKID,
    BODY,
    NEW_AKID,
    NEW_SECRET,
    PATH,
    REGION,
    SECRET,
    SIGNED_AT,
    SIGNED_AT_UNIX,
    Headers,
    _reject,
    _verifier,
    authorization,
    replace_header,
    sign,
)


def _verified_once(monkeypatch: pytest.MonkeyPatch) -> tuple[SigV4Verifier, Headers]:
    verifier = _verifier()
    headers = sign(monkeypatch, PATH, BODY)
    verifier.verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX)
    return verifier, headers


def test_a_remembered_header_stops_verifying_when_its_secret_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier, headers = _verified_once(monkeypatch)
    verifier.set_credentials([Credential(AKID, Secret(NEW_SECRET))])

    assert _reject(headers, verifier=verifier) == "signature mismatch"


def test_a_remembered_header_stops_verifying_when_its_key_id_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier, headers = _verified_once(monkeypatch)
    verifier.set_credentials([Credential(NEW_AKID, Secret(NEW_SECRET))])

    assert "unknown access key id" in _reject(headers, verifier=verifier)


def test_a_remembered_header_with_another_signature_is_still_compared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier, headers = _verified_once(monkeypatch)
    auth = authorization(headers)
    forged = auth[:-64] + ("0" if auth[-64] != "0" else "1") + auth[-63:]

    reason = _reject(
        replace_header(headers, b"authorization", forged.encode()), verifier=verifier
    )

    assert reason == "signature mismatch"


def test_the_remembered_date_is_checked_against_each_request_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier, headers = _verified_once(monkeypatch)
    day = SIGNED_AT.strftime("%Y%m%d")
    other_day = authorization(headers).replace(f"/{day}/", "/20240516/")

    reason = _reject(
        replace_header(headers, b"authorization", other_day.encode()),
        verifier=verifier,
    )

    assert reason == "credential scope date differs from x-amz-date"


def test_the_remembered_date_is_checked_against_the_clock_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier, headers = _verified_once(monkeypatch)

    reason = _reject(headers, verifier=verifier, now=SIGNED_AT_UNIX + 301)

    assert reason == "x-amz-date is -301 s from our clock"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (b"x-amz-date", "2 x-amz-date headers"),
        (b"X-Amz-Date", "2 x-amz-date headers"),
        (b"authorization", "2 authorization headers"),
    ],
)
def test_a_repeated_single_header_is_refused_even_after_a_good_request(
    monkeypatch: pytest.MonkeyPatch, name: bytes, reason: str
) -> None:
    verifier, headers = _verified_once(monkeypatch)
    value = next(v for k, v in headers if k.lower() == name.lower())

    assert _reject([*headers, (name, value)], verifier=verifier) == reason


def test_a_repeated_content_sha256_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = {"x-amz-content-sha256": "0" * 64}
    headers = sign(monkeypatch, PATH, BODY, headers=declared)
    value = next(v for k, v in headers if k == b"x-amz-content-sha256")

    reason = _reject([*headers, (b"x-amz-content-sha256", value)])

    assert reason == "2 x-amz-content-sha256 headers"


def test_an_unsigned_repeat_of_a_signed_header_joins_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier, headers = _verified_once(monkeypatch)

    reason = _reject([*headers, (b"Host", b"other.example")], verifier=verifier)

    assert reason == "signature mismatch"


def test_headers_may_come_as_any_iterable(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, headers = _verified_once(monkeypatch)

    verified = verifier.verify("POST", PATH, iter(headers), BODY, SIGNED_AT_UNIX)

    assert (verified.access_key_id, verified.region) == (AKID, REGION)


def test_the_same_header_verifies_again_from_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier, headers = _verified_once(monkeypatch)
    again = sign(monkeypatch, PATH, b"{}", secret=SECRET)

    assert verifier.verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX)
    assert verifier.verify("POST", PATH, again, b"{}", SIGNED_AT_UNIX)
