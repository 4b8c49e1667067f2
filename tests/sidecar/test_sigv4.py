"""SigV4 verification against requests signed by botocore (spec, Appendix A)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sidecar.xks import sigv4
from sidecar.xks.errors import AuthenticationFailedException
from sidecar.xks.sigv4 import (
    Credential,
    Secret,
    SigV4Verifier,
    Verified,
    canonical_uri,
    kms_format_problems,
)

HOST = "xks.example.test"
AKID = "AKIAI2SFODNN7EXAMPLE"
SECRET = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE"
REGION = "us-east-1"
SERVICE = "kms-xks-proxy"
# A fixed signing time, so tests choose "now" relative to it.
SIGNED_AT = dt.datetime(2024, 5, 15, 12, 0, 0, tzinfo=dt.UTC)
SIGNED_AT_UNIX = SIGNED_AT.timestamp()

Headers = list[tuple[bytes, bytes]]


def sign(
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    akid: str = AKID,
    secret: str = SECRET,
    region: str = REGION,
    service: str = SERVICE,
    at: dt.datetime = SIGNED_AT,
) -> Headers:
    """The headers botocore sends for a POST of ``body`` to ``path``."""
    # botocore reads the clock through this name; naive UTC, as it expects.
    monkeypatch.setattr(
        "botocore.auth.get_current_datetime",
        lambda: at.astimezone(dt.UTC).replace(tzinfo=None),
    )
    request = AWSRequest(
        method="POST", url=f"https://{HOST}{path}", data=body, headers=headers or {}
    )
    SigV4Auth(Credentials(akid, secret), service, region).add_auth(request)
    # botocore signs a Host header derived from the URL; the HTTP client sends it.
    sent = [(b"host", HOST.encode())]
    sent += [(k.encode(), v.encode()) for k, v in request.headers.items()]
    return sent


def replace_header(headers: Headers, name: bytes, value: bytes) -> Headers:
    return [(k, value if k.lower() == name else v) for k, v in headers]


def authorization(headers: Headers) -> str:
    return next(v for k, v in headers if k.lower() == b"authorization").decode()


PATH = "/kms/xks/v1/keys/foo.bar-1_x/encrypt"
BODY = b'{"requestMetadata":{"kmsOperation":"Encrypt"},"plaintext":"AA=="}'
NEW_AKID = "HGIE2BUAFNDMBCMSQVWLGCEXAMPLE"
NEW_SECRET = "VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456"


def _verifier(region: str | None = REGION) -> SigV4Verifier:
    return SigV4Verifier(
        [
            Credential(AKID, Secret(SECRET)),
            Credential(NEW_AKID, Secret(NEW_SECRET)),
        ],
        region=region,
    )


def _reject(
    headers: Headers,
    *,
    path: str = PATH,
    body: bytes = BODY,
    now: float = SIGNED_AT_UNIX,
    verifier: SigV4Verifier | None = None,
) -> str:
    """Verify expecting failure; return the internal reason."""
    with pytest.raises(AuthenticationFailedException) as caught:
        (verifier or _verifier()).verify("POST", path, headers, body, now)
    error = caught.value
    assert error.message == AuthenticationFailedException.default_message
    assert error.reason is not None
    return error.reason


# --- accepted ------------------------------------------------------------------


def test_kms_style_request_signing_host_and_date_verifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    assert "SignedHeaders=host;x-amz-date," in authorization(headers)
    result = _verifier().verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX)
    assert result == Verified(access_key_id=AKID, region=REGION)


def test_curl_style_request_also_signing_content_type_verifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(
        monkeypatch, PATH, BODY, headers={"Content-Type": "application/json"}
    )
    assert "SignedHeaders=content-type;host;x-amz-date," in authorization(headers)
    assert _verifier().verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX)


def test_signed_content_sha256_header_matching_the_body_verifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    headers = sign(monkeypatch, PATH, BODY, headers={"X-Amz-Content-SHA256": digest})
    assert "x-amz-content-sha256" in authorization(headers)
    assert _verifier().verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX)


def test_either_of_two_active_credentials_verifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = _verifier()
    for akid, secret in ((AKID, SECRET), (NEW_AKID, NEW_SECRET)):
        headers = sign(monkeypatch, PATH, BODY, akid=akid, secret=secret)
        assert (
            verifier.verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX).access_key_id
            == akid
        )


def test_rotation_removes_the_old_credential_without_a_new_verifier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = _verifier()
    old = sign(monkeypatch, PATH, BODY)
    assert verifier.verify("POST", PATH, old, BODY, SIGNED_AT_UNIX)
    verifier.set_credentials([Credential(NEW_AKID, Secret(NEW_SECRET))])
    assert "unknown access key id" in _reject(old, verifier=verifier)
    new = sign(monkeypatch, PATH, BODY, akid=NEW_AKID, secret=NEW_SECRET)
    assert verifier.verify("POST", PATH, new, BODY, SIGNED_AT_UNIX)


@pytest.mark.parametrize(
    "path",
    [
        "/kms/xks/v1/health",
        "/kms/xks/v1/keys/foo.bar-1_x/encrypt",
        "/tenants/a_b-c/kms/xks/v1/keys/A.B.C/decrypt",
        "/kms/xks/v1/keys/-._-/metadata",
    ],
)
def test_xks_paths_verify_with_botocore_canonical_uri(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    headers = sign(monkeypatch, path, BODY)
    assert _verifier().verify("POST", path, headers, BODY, SIGNED_AT_UNIX)


def test_paths_needing_encoding_match_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not XKS paths (routes refuses them), but the canonical URI must still
    # follow botocore so the verifier is right on its own.
    for path in ("/a%20b/c", "/a/./b/../c", "/a//b", "/a b"):
        headers = sign(monkeypatch, path.replace(" ", "%20"), BODY)
        sent = path.replace(" ", "%20")
        assert _verifier().verify("POST", sent, headers, BODY, SIGNED_AT_UNIX)


def test_canonical_uri_is_the_path_itself_for_xks_paths() -> None:
    path = "/p/kms/xks/v1/keys/foo.bar-1_x/encrypt"
    assert canonical_uri(path) == path
    assert canonical_uri("/a%2Fb") == "/a%252Fb"
    assert canonical_uri("") == "/"


def test_clock_skew_of_exactly_five_minutes_is_tolerated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    for now in (SIGNED_AT_UNIX - 300, SIGNED_AT_UNIX + 300):
        assert _verifier().verify("POST", PATH, headers, BODY, now)


def test_header_values_are_trimmed_and_space_folded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(
        monkeypatch, PATH, BODY, headers={"Content-Type": "application/json"}
    )
    padded = replace_header(headers, b"content-type", b"  application/json  ")
    assert _verifier().verify("POST", PATH, padded, BODY, SIGNED_AT_UNIX)
    headers = sign(monkeypatch, PATH, BODY, headers={"X-Custom": "a   b\tc"})
    folded = replace_header(headers, b"x-custom", b"a b c")
    assert _verifier().verify("POST", PATH, folded, BODY, SIGNED_AT_UNIX)


def test_header_names_match_in_any_letter_case(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    shouting = [(k.upper(), v) for k, v in headers]
    assert _verifier().verify("POST", PATH, shouting, BODY, SIGNED_AT_UNIX)


def test_unsigned_extra_headers_do_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    headers.append((b"user-agent", b"whatever/1.0"))
    headers.append((b"content-length", str(len(BODY)).encode()))
    assert _verifier().verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX)


def test_no_region_configured_accepts_any_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(monkeypatch, PATH, BODY, region="eu-west-1")
    verified = _verifier(region=None).verify(
        "POST", PATH, headers, BODY, SIGNED_AT_UNIX
    )
    assert verified.region == "eu-west-1"


# --- rejected ------------------------------------------------------------------


def test_wrong_secret_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY, secret=NEW_SECRET)
    assert _reject(headers) == "signature mismatch"


def test_unknown_access_key_id_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY, akid="UNKNOWNKEYID23456789")
    assert "unknown access key id" in _reject(headers)


@pytest.mark.parametrize("offset", [-301, 301, -86400, 3600])
def test_clock_skew_beyond_five_minutes_is_rejected(
    monkeypatch: pytest.MonkeyPatch, offset: float
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    assert "from our clock" in _reject(headers, now=SIGNED_AT_UNIX + offset)


def test_scope_date_must_equal_the_x_amz_date_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    forged = authorization(headers).replace("/20240515/", "/20240514/")
    headers = replace_header(headers, b"authorization", forged.encode())
    assert "scope date" in _reject(headers)


def test_signed_just_before_midnight_verifies_just_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at = dt.datetime(2024, 5, 15, 23, 59, 0, tzinfo=dt.UTC)
    headers = sign(monkeypatch, PATH, BODY, at=at)
    assert _verifier().verify("POST", PATH, headers, BODY, at.timestamp() + 120)


def test_other_service_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY, service="kms")
    assert "service" in _reject(headers)


def test_other_region_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY, region="eu-west-1")
    assert "region" in _reject(headers)


@pytest.mark.parametrize(
    "body", [BODY + b" ", BODY[:-1], b"", BODY.replace(b"Encrypt", b"Decrypt")]
)
def test_tampered_body_is_rejected(
    monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    assert _reject(headers, body=body) == "signature mismatch"


@pytest.mark.parametrize(
    "path",
    [
        "/kms/xks/v1/keys/foo.bar-1_x/decrypt",
        "/kms/xks/v1/keys/foo.bar-1_y/encrypt",
        "/other/kms/xks/v1/keys/foo.bar-1_x/encrypt",
    ],
)
def test_tampered_path_is_rejected(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    assert _reject(headers, path=path) == "signature mismatch"


def test_other_method_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    with pytest.raises(AuthenticationFailedException):
        _verifier().verify("PUT", PATH, headers, BODY, SIGNED_AT_UNIX)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"host", b"evil.example.test"),
        (b"content-type", b"text/plain"),
        (b"x-amz-date", b"20240515T120001Z"),
    ],
)
def test_tampered_signed_header_is_rejected(
    monkeypatch: pytest.MonkeyPatch, name: bytes, value: bytes
) -> None:
    headers = sign(
        monkeypatch, PATH, BODY, headers={"Content-Type": "application/json"}
    )
    assert _reject(replace_header(headers, name, value)) == "signature mismatch"


def test_missing_signed_header_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(
        monkeypatch, PATH, BODY, headers={"Content-Type": "application/json"}
    )
    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
    assert "content-type is missing" in _reject(headers)


def test_repeated_signed_header_changes_the_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    headers.append((b"host", HOST.encode()))
    assert _reject(headers) == "signature mismatch"


def test_content_sha256_not_matching_the_body_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for value in ("UNSIGNED-PAYLOAD", hashlib.sha256(b"other").hexdigest()):
        headers = sign(monkeypatch, PATH, BODY, headers={"X-Amz-Content-SHA256": value})
        assert "x-amz-content-sha256" in _reject(headers)


def test_date_must_be_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    forged = authorization(headers).replace("host;x-amz-date", "host")
    headers = replace_header(headers, b"authorization", forged.encode())
    assert "must both be signed" in _reject(headers)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        lambda a: a.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256,"),
        lambda a: a.replace("/aws4_request", "/aws5_request"),
        lambda a: a.replace("Signature=", "Signature=0"),
        lambda a: a[:-1],
        lambda a: a.upper(),
        lambda a: a + ", Extra=1",
        lambda a: a.replace(
            "SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date;host"
        ),
        lambda a: a.replace(
            "SignedHeaders=host;x-amz-date", "SignedHeaders=host;host;x-amz-date"
        ),
        lambda a: a.replace(
            "SignedHeaders=host;x-amz-date", "SignedHeaders=Host;x-amz-date"
        ),
        lambda a: a.replace("Credential=", "Credential=X/"),
        lambda a: "",
        lambda a: "Basic dXNlcjpwYXNz",
    ],
)
def test_malformed_authorization_is_rejected(
    monkeypatch: pytest.MonkeyPatch, mangle: Callable[[str], str]
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    forged = mangle(authorization(headers)).encode()
    assert _reject(replace_header(headers, b"authorization", forged))


def test_missing_or_repeated_authorization_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    without = [(k, v) for k, v in headers if k.lower() != b"authorization"]
    assert "no authorization" in _reject(without)
    twice = [*headers, (b"authorization", authorization(headers).encode())]
    assert "2 authorization" in _reject(twice)


@pytest.mark.parametrize(
    "value", [b"", b"2024-05-15T12:00:00Z", b"20240515T120000", b"20241315T120000Z"]
)
def test_malformed_x_amz_date_is_rejected(
    monkeypatch: pytest.MonkeyPatch, value: bytes
) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    assert _reject(replace_header(headers, b"x-amz-date", value))


def test_non_ascii_authorization_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = sign(monkeypatch, PATH, BODY)
    assert "ASCII" in _reject(replace_header(headers, b"authorization", b"\xff"))


# --- secrets and configuration ---------------------------------------------------


def test_secrets_never_show_in_repr_or_str() -> None:
    secret = Secret(SECRET)
    credential = Credential(AKID, secret)
    for text in (repr(secret), str(secret), repr(credential), repr(_verifier())):
        assert SECRET not in text
    assert secret.reveal() == SECRET


def test_duplicate_access_key_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        SigV4Verifier([Credential(AKID, Secret("a")), Credential(AKID, Secret("b"))])


@pytest.mark.parametrize("akid", ["", "AKID/X", "AKID X", "AKID,X"])
def test_access_key_ids_that_would_break_parsing_are_refused(akid: str) -> None:
    with pytest.raises(ValueError, match="access key id"):
        Credential(akid, Secret(SECRET))


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Secret("")


def test_kms_format_problems_are_reported_not_enforced() -> None:
    assert kms_format_problems(Credential(AKID, Secret(SECRET))) == []
    problems = kms_format_problems(Credential("short1", Secret("x")))
    assert len(problems) == 2


def test_signing_keys_are_cached_per_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = _verifier()
    calls: list[tuple[str, str, str]] = []
    real = sigv4._derive_signing_key

    def counting(secret: str, date: str, region: str) -> bytes:
        calls.append((secret, date, region))
        return real(secret, date, region)

    monkeypatch.setattr(sigv4, "_derive_signing_key", counting)
    headers = sign(monkeypatch, PATH, BODY)
    for _ in range(3):
        verifier.verify("POST", PATH, headers, BODY, SIGNED_AT_UNIX)
    assert calls == [(SECRET, SIGNED_AT.strftime("%Y%m%d"), REGION)]
