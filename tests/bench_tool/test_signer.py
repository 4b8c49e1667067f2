"""The load tool's SigV4 signer produces botocore's headers, byte for byte."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.bench.signer import SigV4Signer, host_header, payload_hash
from sidecar.xks.sigv4 import Credential, Secret, SigV4Verifier

ACCESS_KEY_ID = "MUBSXM6K3KMXHN6RRCXI7TWQH4NU76HY"
SECRET = "VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456"


def botocore_headers(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    body: bytes,
    when: dt.datetime,
    region: str = "us-east-1",
) -> tuple[str, str]:
    """(X-Amz-Date, Authorization) as botocore's SigV4Auth signs the POST."""
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: when)
    request = AWSRequest(method="POST", url=url, data=body, headers={})
    credentials = Credentials(ACCESS_KEY_ID, SECRET)
    SigV4Auth(credentials, "kms-xks-proxy", region).add_auth(request)
    return request.headers["X-Amz-Date"], request.headers["Authorization"]


def ours(
    endpoint: str, path: str, body: bytes, when: dt.datetime, region: str = "us-east-1"
) -> tuple[str, str]:
    signer = SigV4Signer(ACCESS_KEY_ID, Secret(SECRET), region, host_header(endpoint))
    signature = signer.sign(path, payload_hash(body), when.timestamp())
    return signature.amz_date.decode(), signature.authorization.decode()


WHEN = dt.datetime(2021, 10, 9, 12, 34, 56, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("endpoint", "path", "body"),
    [
        ("https://xks.example.test:8443", "/kms/xks/v1/keys/foo/encrypt", b'{"a":1}'),
        ("https://xks.example.test", "/dev/kms/xks/v1/keys/foo/decrypt", b"{}"),
        ("https://XKS.Example.test:443", "/tenant-b/kms/xks/v1/health", b""),
        ("https://127.0.0.1:9443", "/kms/xks/v1/keys/k.e_y-1/metadata", b"x" * 6000),
    ],
)
def test_authorization_header_equals_botocores(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, path: str, body: bytes
) -> None:
    expected = botocore_headers(monkeypatch, endpoint + path, body, WHEN)

    assert ours(endpoint, path, body, WHEN) == expected
    assert "SignedHeaders=host;x-amz-date," in expected[1]


def test_signature_follows_the_date_across_midnight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The per-day signing key is re-derived when the UTC date changes."""
    endpoint, path, body = "https://xks.example.test", "/kms/xks/v1/health", b"{}"
    signer = SigV4Signer(ACCESS_KEY_ID, Secret(SECRET), "eu-west-1", "xks.example.test")
    for when in (
        dt.datetime(2024, 2, 28, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2024, 2, 29, 0, 0, 0, tzinfo=dt.UTC),
    ):
        signature = signer.sign(path, payload_hash(body), when.timestamp())
        expected = botocore_headers(
            monkeypatch, endpoint + path, body, when, "eu-west-1"
        )
        assert (
            signature.amz_date.decode(),
            signature.authorization.decode(),
        ) == expected


_KEY_ID_CHARS = st.sampled_from("abcXYZ019-_")


@settings(max_examples=50, deadline=None)
@given(
    key_id=st.text(_KEY_ID_CHARS, min_size=1, max_size=40),
    body=st.binary(max_size=300),
    seconds=st.integers(min_value=0, max_value=4_000_000_000),
)
def test_any_xks_path_and_body_sign_like_botocore(
    key_id: str, body: bytes, seconds: int
) -> None:
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    endpoint, path = (
        "https://xks.example.test:4443",
        f"/p/kms/xks/v1/keys/{key_id}/encrypt",
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = botocore_headers(monkeypatch, endpoint + path, body, when)

    assert ours(endpoint, path, body, when) == expected


def test_the_sidecars_verifier_accepts_the_signature() -> None:
    endpoint, path, body = "https://xks.example.test:8443", "/kms/xks/v1/health", b"{}"
    amz_date, authorization = ours(endpoint, path, body, WHEN)
    verifier = SigV4Verifier([Credential(ACCESS_KEY_ID, Secret(SECRET))])
    headers = [
        (b"Host", b"xks.example.test:8443"),
        (b"X-Amz-Date", amz_date.encode()),
        (b"Authorization", authorization.encode()),
    ]

    verified = verifier.verify("POST", path, headers, body, WHEN.timestamp())

    assert verified.access_key_id == ACCESS_KEY_ID


def test_payload_hash_is_hex_sha256() -> None:
    assert payload_hash(b"abc") == hashlib.sha256(b"abc").hexdigest().encode()


def test_repr_hides_the_secret() -> None:
    signer = SigV4Signer(ACCESS_KEY_ID, Secret(SECRET), "us-east-1", "h")
    signer.sign("/kms/xks/v1/health", payload_hash(b""))

    assert SECRET not in repr(signer)
