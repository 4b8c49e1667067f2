"""The XKS core's hot-path shortcuts give what the plain code gives.

Request metadata is checked in one pass when it is plainly valid (any doubt
goes to the field-by-field check), routes are remembered per target, a
policy without rules answers its default at once, Decrypt reads only the key
version from the metadata, and an Encrypt response is formatted by hand.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.xks import messages
from sidecar.xks.envelope import decode_metadata, encode_metadata, metadata_key_version
from sidecar.xks.errors import (
    AccessDeniedException,
    InvalidCiphertextException,
    InvalidUriPathException,
    MethodNotAllowed,
    XksError,
)
from sidecar.xks.messages import MAX_METADATA_STRING, RequestMetadata
from sidecar.xks.policy import Effect, Policy
from sidecar.xks.responses import EncryptResponse
from sidecar.xks.routes import Operation, Route, Router

_REQUIRED = (
    messages._HEALTH_REQUIRED,
    messages._KEY_METADATA_REQUIRED,
    messages._CRYPTO_REQUIRED,
)
_VALUES = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=5),
    st.just("a" * MAX_METADATA_STRING),
    st.just("a" * (MAX_METADATA_STRING + 1)),
    st.integers(),
    st.booleans(),
    st.lists(st.text(max_size=2), max_size=1),
)


def _outcome(
    parse: Any, raw: dict[str, Any], required: tuple[str, ...]
) -> RequestMetadata | tuple[type[XksError], str]:
    try:
        result: RequestMetadata = parse(raw, required)
    except XksError as exc:
        return type(exc), exc.message
    return result


@given(
    st.dictionaries(st.sampled_from(messages._METADATA_FIELDS), _VALUES),
    st.sampled_from(_REQUIRED),
)
def test_metadata_fast_path_agrees_with_the_field_by_field_check(
    raw: dict[str, Any], required: tuple[str, ...]
) -> None:
    def fast(raw: dict[str, Any], required: tuple[str, ...]) -> RequestMetadata:
        return messages._metadata({"requestMetadata": raw}, required)

    if raw == {}:
        return  # "requestMetadata is required", before either check
    assert _outcome(fast, raw, required) == _outcome(
        messages._checked_metadata, raw, required
    )


def test_an_empty_optional_metadata_string_counts_as_absent() -> None:
    raw = {"kmsRequestId": "r", "kmsOperation": "Encrypt", "awsPrincipalArn": ""}

    parsed = messages._metadata({"requestMetadata": raw}, messages._HEALTH_REQUIRED)

    assert parsed == RequestMetadata("r", "Encrypt")


def test_a_cached_route_still_answers_405_to_other_methods() -> None:
    router = Router([("dev", "/kms/xks/v1")])
    target = "/kms/xks/v1/keys/foo/encrypt"

    first = router.resolve("POST", target)
    with pytest.raises(MethodNotAllowed):
        router.resolve("GET", target)

    assert router.resolve("POST", target) is first
    assert first == Route("dev", Operation.ENCRYPT, "foo")


def test_a_cached_route_still_checks_the_whole_uri_length() -> None:
    router = Router([("dev", "/kms/xks/v1")])
    target = "/kms/xks/v1/keys/foo/encrypt"
    router.resolve("POST", target, "h")

    with pytest.raises(InvalidUriPathException, match="longer than 256"):
        router.resolve("POST", target, "h" * 250)


def test_invalid_targets_stay_invalid_however_often_asked() -> None:
    router = Router([("dev", "/kms/xks/v1")])
    for _ in range(2):
        with pytest.raises(InvalidUriPathException):
            router.resolve("POST", "/kms/xks/v1/keys/foo/sign")


def test_route_cache_is_bounded() -> None:
    router = Router([("dev", "/kms/xks/v1")])
    for number in range(3000):
        router.resolve("POST", f"/kms/xks/v1/keys/k{number}/encrypt")

    assert len(router._routes) <= 1024
    assert router.resolve("POST", "/kms/xks/v1/keys/k1/decrypt").external_key_id == "k1"


@pytest.mark.parametrize(
    ("default", "allowed"), [(Effect.ALLOW, True), (Effect.DENY, False)]
)
def test_a_policy_without_rules_answers_its_default(
    default: Effect, allowed: bool
) -> None:
    policy = Policy((), default)
    metadata = RequestMetadata("r", "Encrypt", "arn:p")

    decision = policy.decide(Operation.ENCRYPT, "foo", metadata)

    assert (decision.allowed, decision.rule) == (allowed, None)
    if not allowed:
        with pytest.raises(AccessDeniedException) as caught:
            policy.authorize(Operation.DECRYPT, "foo", metadata)
        assert caught.value.reason == "denied by policy: default effect"


@pytest.mark.parametrize(
    "metadata",
    [None, b"", b"\x01\x00\x00\x00", b"\x02\x00\x00\x00\x01", b"\x01" + bytes(5)],
)
def test_key_version_refuses_what_decode_metadata_refuses(
    metadata: bytes | None,
) -> None:
    with pytest.raises(InvalidCiphertextException) as fast:
        metadata_key_version(metadata)
    with pytest.raises(InvalidCiphertextException) as full:
        decode_metadata(metadata)

    assert fast.value.reason == full.value.reason


@pytest.mark.parametrize("version", [0, 1, 7, 0xFFFF_FFFF])
def test_key_version_reads_what_encode_metadata_wrote(version: int) -> None:
    metadata = encode_metadata(version)

    assert metadata_key_version(metadata) == decode_metadata(metadata).key_version
    assert metadata_key_version(metadata) == version


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("metadata", [None, b"\x01\x00\x00\x00\x01"])
@pytest.mark.parametrize("cdiv", [None, "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc="])
def test_encrypt_response_is_the_compact_json_of_its_fields(
    metadata: bytes | None, cdiv: str | None
) -> None:
    response = EncryptResponse(
        b"\x00\xff" * 20, bytes(12), b"\xfe" * 16, metadata, cdiv
    )
    expected: dict[str, str] = {
        "ciphertext": _b64(b"\x00\xff" * 20),
        "initializationVector": _b64(bytes(12)),
        "authenticationTag": _b64(b"\xfe" * 16),
    }
    if metadata is not None:
        expected["ciphertextMetadata"] = _b64(metadata)
    if cdiv is not None:
        expected["ciphertextDataIntegrityValue"] = cdiv

    assert response.to_json() == json.dumps(expected, separators=(",", ":")).encode()


def test_the_request_id_of_a_refused_request_is_found_without_a_parse() -> None:
    body = b'{"requestMetadata": {"kmsRequestId" : "4112f4d6-db54", "x": 1}}'

    assert messages.peek_request_id(body) == "4112f4d6-db54"
    assert messages.peek_request_id(b'{"kmsRequestId":"a\\"b"}') is None
    assert messages.peek_request_id(b'{"kmsRequestId": 7}') is None
    assert messages.peek_request_id(b'{"kmsRequestId":"' + b"x" * 129 + b'"}') is None
