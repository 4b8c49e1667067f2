"""Request bodies → typed requests, or ValidationException naming the field."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.xks.errors import (
    UnsupportedOperationException,
    ValidationException,
    XksError,
)
from sidecar.xks.messages import (
    MAX_AAD,
    MAX_PLAINTEXT,
    DecryptRequest,
    EncryptRequest,
    GetHealthStatusRequest,
    GetKeyMetadataRequest,
    RequestMetadata,
    XksRequest,
    decode_base64,
    parse_decrypt,
    parse_encrypt,
    parse_get_health_status,
    parse_get_key_metadata,
    parse_request,
)
from sidecar.xks.routes import Operation

# The spec's request payload examples, verbatim.
SPEC_ENCRYPT = b"""{
    "requestMetadata": {
        "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
        "kmsKeyArn": "arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "kmsOperation": "Encrypt",
        "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
        "kmsViaService": "ebs"
    },
    "additionalAuthenticatedData": "cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n",
    "plaintext": "SGVsbG8gV29ybGQh",
    "encryptionAlgorithm": "AES_GCM",
    "ciphertextDataIntegrityValueAlgorithm": "SHA_256"
}"""  # noqa: E501
SPEC_DECRYPT = b"""{
    "requestMetadata": {
        "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
        "kmsKeyArn": "arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "kmsOperation": "Decrypt",
        "kmsRequestId": "5112f4d6-db54-4af4-ae30-c55a22a8dfae",
        "kmsViaService": "ebs"
    },
    "additionalAuthenticatedData": "cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n",
    "encryptionAlgorithm": "AES_GCM",
    "ciphertext": "ghxkK1txeDNn3q8Y",
    "ciphertextMetadata": "a2V5X3ZlcnNpb249MQ==",
    "initializationVector": "HMrlRw85cAJUd5Ax",
    "authenticationTag": "vBxN2ncH1oEkR8WVXpmyYQ=="
}"""  # noqa: E501
SPEC_METADATA = b"""{
    "requestMetadata": {
        "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
        "kmsOperation": "CreateKey",
        "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae"
    }
}"""
SPEC_HEALTH = b"""{
    "requestMetadata": {
        "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
        "kmsOperation": "CreateCustomKeyStore"
    }
}"""


def _doc(raw: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _dump(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the spec's examples -----------------------------------------------------


def test_spec_encrypt_example_parses() -> None:
    request = parse_encrypt(SPEC_ENCRYPT)
    assert request.plaintext == b"Hello World!"
    assert request.additional_authenticated_data == (
        b"project=nile,department=marketing"
    )
    assert request.cdiv_algorithm == "SHA_256"
    assert request.metadata == RequestMetadata(
        kms_request_id="4112f4d6-db54-4af4-ae30-c55a22a8dfae",
        kms_operation="Encrypt",
        aws_principal_arn="arn:aws:iam::123456789012:user/Alice",
        kms_key_arn="arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab",
        kms_via_service="ebs",
    )


def test_spec_decrypt_example_parses() -> None:
    request = parse_decrypt(SPEC_DECRYPT)
    assert request.ciphertext.hex() == "821c642b5b71783367deaf18"
    assert request.ciphertext_metadata == b"key_version=1"
    assert request.initialization_vector.hex() == "1ccae5470f39700254779031"
    assert len(request.authentication_tag) == 16
    assert request.metadata.kms_operation == "Decrypt"


def test_spec_metadata_and_health_examples_parse() -> None:
    metadata = parse_get_key_metadata(SPEC_METADATA).metadata
    assert metadata.aws_principal_arn == "arn:aws:iam::123456789012:user/Alice"
    assert metadata.kms_key_arn is None
    health = parse_get_health_status(SPEC_HEALTH).metadata
    assert health.kms_operation == "CreateCustomKeyStore"
    assert health.aws_principal_arn is None


@pytest.mark.parametrize(
    ("operation", "body", "kind"),
    [
        (Operation.ENCRYPT, SPEC_ENCRYPT, EncryptRequest),
        (Operation.DECRYPT, SPEC_DECRYPT, DecryptRequest),
        (Operation.GET_KEY_METADATA, SPEC_METADATA, GetKeyMetadataRequest),
        (Operation.GET_HEALTH_STATUS, SPEC_HEALTH, GetHealthStatusRequest),
    ],
)
def test_parse_request_dispatches_on_the_operation(
    operation: Operation, body: bytes, kind: type
) -> None:
    assert isinstance(parse_request(operation, body), kind)


def test_optional_fields_may_be_absent() -> None:
    doc = _doc(SPEC_ENCRYPT)
    del doc["additionalAuthenticatedData"]
    del doc["ciphertextDataIntegrityValueAlgorithm"]
    del doc["requestMetadata"]["kmsViaService"]
    request = parse_encrypt(_dump(doc))
    assert request.additional_authenticated_data == b""
    assert request.cdiv_algorithm is None
    assert request.metadata.kms_via_service is None

    doc = _doc(SPEC_DECRYPT)
    del doc["ciphertextMetadata"]
    assert parse_decrypt(_dump(doc)).ciphertext_metadata is None


def test_optional_fields_given_as_null_count_as_absent() -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["additionalAuthenticatedData"] = None
    doc["requestMetadata"]["awsSourceVpc"] = None
    request = parse_encrypt(_dump(doc))
    assert request.additional_authenticated_data == b""
    assert request.metadata.aws_source_vpc is None


def test_vpc_fields_are_read_when_present() -> None:
    doc = _doc(SPEC_DECRYPT)
    doc["requestMetadata"]["awsSourceVpc"] = "vpc-1"
    doc["requestMetadata"]["awsSourceVpce"] = "vpce-2"
    metadata = parse_decrypt(_dump(doc)).metadata
    assert (metadata.aws_source_vpc, metadata.aws_source_vpce) == ("vpc-1", "vpce-2")


def test_unknown_fields_and_kms_operations_are_accepted() -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["futureField"] = {"nested": [1, 2.5, None, True]}
    doc["requestMetadata"]["kmsRecipientAttestationPCR0"] = "abc"
    doc["requestMetadata"]["kmsOperation"] = "BulkEncrypt"
    doc["requestMetadata"]["kmsRequestId"] = "not a uuid at all!"
    request = parse_encrypt(_dump(doc))
    assert request.metadata.kms_operation == "BulkEncrypt"
    assert request.metadata.kms_request_id == "not a uuid at all!"


def test_arns_of_2048_characters_are_accepted() -> None:
    arn = "arn:aws:iam::123456789012:role/" + "r" * (2048 - 31)
    doc = _doc(SPEC_ENCRYPT)
    doc["requestMetadata"]["awsPrincipalArn"] = arn
    doc["requestMetadata"]["kmsKeyArn"] = arn
    assert parse_encrypt(_dump(doc)).metadata.aws_principal_arn == arn


def test_spec_minimum_sizes_are_accepted() -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["plaintext"] = _b64(b"p" * 4300)
    doc["additionalAuthenticatedData"] = _b64(b"a" * 8192)
    request = parse_encrypt(_dump(doc))
    assert len(request.plaintext) == 4300
    assert len(request.additional_authenticated_data) == 8192

    doc = _doc(SPEC_DECRYPT)
    doc["ciphertext"] = _b64(b"c" * 4300)
    doc["initializationVector"] = _b64(b"i" * 16)
    doc["additionalAuthenticatedData"] = _b64(b"a" * 8192)
    assert len(parse_decrypt(_dump(doc)).ciphertext) == 4300


def test_our_own_maximum_sizes_are_accepted() -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["plaintext"] = _b64(b"p" * MAX_PLAINTEXT)
    doc["additionalAuthenticatedData"] = _b64(b"a" * MAX_AAD)
    assert len(parse_encrypt(_dump(doc)).plaintext) == MAX_PLAINTEXT


@pytest.mark.parametrize(
    ("field", "size"),
    [("plaintext", MAX_PLAINTEXT + 1), ("additionalAuthenticatedData", MAX_AAD + 1)],
)
def test_beyond_our_maximum_is_unsupported_not_invalid(field: str, size: int) -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc[field] = _b64(b"x" * size)
    with pytest.raises(UnsupportedOperationException, match=field):
        parse_encrypt(_dump(doc))


def test_huge_base64_is_refused_before_decoding() -> None:
    doc = _doc(SPEC_DECRYPT)
    doc["ciphertext"] = "!" * 100_000  # not even Base64: size is checked first
    with pytest.raises(UnsupportedOperationException, match="ciphertext"):
        parse_decrypt(_dump(doc))


def test_request_repr_hides_plaintext_and_aad() -> None:
    text = repr(parse_encrypt(SPEC_ENCRYPT)) + repr(parse_decrypt(SPEC_DECRYPT))
    assert "Hello" not in text
    assert "nile" not in text
    assert "plaintext" not in text


# --- rejections ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"a": "\xc3"}', "UTF-8"),
        ('{"a":1}'.encode("utf-16"), "UTF-8"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b"[" * 100_000, "nest"),
    ],
)
def test_malformed_bodies_are_validation_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(ValidationException, match=fragment):
        parse_get_health_status(body)


def test_duplicate_keys_inside_request_metadata_are_rejected() -> None:
    body = SPEC_HEALTH.replace(
        b'"kmsOperation"', b'"kmsOperation": "X", "kmsOperation"'
    )
    with pytest.raises(ValidationException, match="duplicate"):
        parse_get_health_status(body)


@pytest.mark.parametrize("value", [None, {}, [], "x", 3])
@pytest.mark.parametrize(
    "parse", [parse_get_health_status, parse_get_key_metadata, parse_encrypt]
)
def test_missing_or_empty_request_metadata_is_rejected(
    parse: Any, value: object
) -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["requestMetadata"] = value
    with pytest.raises(ValidationException, match="requestMetadata"):
        parse(_dump(doc))


@pytest.mark.parametrize(
    ("parse", "body", "field"),
    [
        (parse_get_health_status, SPEC_HEALTH, "kmsRequestId"),
        (parse_get_health_status, SPEC_HEALTH, "kmsOperation"),
        (parse_get_key_metadata, SPEC_METADATA, "awsPrincipalArn"),
        (parse_get_key_metadata, SPEC_METADATA, "kmsOperation"),
        (parse_get_key_metadata, SPEC_METADATA, "kmsRequestId"),
        (parse_encrypt, SPEC_ENCRYPT, "kmsKeyArn"),
        (parse_encrypt, SPEC_ENCRYPT, "awsPrincipalArn"),
        (parse_decrypt, SPEC_DECRYPT, "kmsKeyArn"),
        (parse_decrypt, SPEC_DECRYPT, "kmsRequestId"),
    ],
)
@pytest.mark.parametrize("how", ["missing", "empty", "null", "number"])
def test_required_metadata_fields_are_enforced(
    parse: Any, body: bytes, field: str, how: str
) -> None:
    doc = _doc(body)
    metadata = doc["requestMetadata"]
    if how == "missing":
        del metadata[field]
    else:
        metadata[field] = {"empty": "", "null": None, "number": 7}[how]
    with pytest.raises(ValidationException, match=f"requestMetadata.{field}"):
        parse(_dump(doc))


def test_health_does_not_require_a_principal() -> None:
    doc = _doc(SPEC_HEALTH)
    assert "awsPrincipalArn" not in doc["requestMetadata"]
    assert parse_get_health_status(SPEC_HEALTH)


@pytest.mark.parametrize(
    ("parse", "body", "field"),
    [
        (parse_encrypt, SPEC_ENCRYPT, "plaintext"),
        (parse_encrypt, SPEC_ENCRYPT, "encryptionAlgorithm"),
        (parse_decrypt, SPEC_DECRYPT, "ciphertext"),
        (parse_decrypt, SPEC_DECRYPT, "encryptionAlgorithm"),
        (parse_decrypt, SPEC_DECRYPT, "initializationVector"),
        (parse_decrypt, SPEC_DECRYPT, "authenticationTag"),
    ],
)
@pytest.mark.parametrize("how", ["missing", "empty", "null"])
def test_required_body_fields_are_enforced(
    parse: Any, body: bytes, field: str, how: str
) -> None:
    doc = _doc(body)
    if how == "missing":
        del doc[field]
    else:
        doc[field] = "" if how == "empty" else None
    with pytest.raises(ValidationException, match=field):
        parse(_dump(doc))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("plaintext", 12),
        ("plaintext", ["SGVsbG8="]),
        ("additionalAuthenticatedData", True),
        ("ciphertextDataIntegrityValueAlgorithm", 256),
    ],
)
def test_wrong_types_are_rejected_naming_the_field(field: str, value: object) -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc[field] = value
    with pytest.raises(ValidationException, match=field):
        parse_encrypt(_dump(doc))


@pytest.mark.parametrize("algorithm", ["AES_GCM_256", "aes_gcm", "AES_CBC", 1])
def test_encryption_algorithm_must_be_aes_gcm(algorithm: object) -> None:
    for body, parse in ((SPEC_ENCRYPT, parse_encrypt), (SPEC_DECRYPT, parse_decrypt)):
        doc = _doc(body)
        doc["encryptionAlgorithm"] = algorithm
        with pytest.raises(ValidationException, match="AES_GCM"):
            parse(_dump(doc))


@pytest.mark.parametrize("algorithm", ["SHA_512", "sha_256", "SHA256", ""])
def test_cdiv_algorithm_must_be_sha_256_when_present(algorithm: str) -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["ciphertextDataIntegrityValueAlgorithm"] = algorithm
    with pytest.raises(ValidationException, match="SHA_256"):
        parse_encrypt(_dump(doc))


@pytest.mark.parametrize("size", [0, 8, 11, 13, 15, 17, 32])
def test_iv_must_be_12_or_16_bytes(size: int) -> None:
    doc = _doc(SPEC_DECRYPT)
    doc["initializationVector"] = _b64(b"i" * size)
    with pytest.raises(ValidationException, match="initializationVector"):
        parse_decrypt(_dump(doc))


@pytest.mark.parametrize("size", [12, 16])
def test_iv_of_12_or_16_bytes_is_accepted(size: int) -> None:
    doc = _doc(SPEC_DECRYPT)
    doc["initializationVector"] = _b64(b"i" * size)
    assert len(parse_decrypt(_dump(doc)).initialization_vector) == size


@pytest.mark.parametrize("size", [1, 12, 15, 17, 32])
def test_tag_must_be_16_bytes(size: int) -> None:
    doc = _doc(SPEC_DECRYPT)
    doc["authenticationTag"] = _b64(b"t" * size)
    with pytest.raises(ValidationException, match="authenticationTag"):
        parse_decrypt(_dump(doc))


def test_ciphertext_metadata_of_20_bytes_is_accepted_and_21_is_invalid() -> None:
    doc = _doc(SPEC_DECRYPT)
    doc["ciphertextMetadata"] = _b64(b"m" * 20)
    assert parse_decrypt(_dump(doc)).ciphertext_metadata == b"m" * 20
    for value in (_b64(b"m" * 21), _b64(b"m" * 300)):
        doc["ciphertextMetadata"] = value
        with pytest.raises(ValidationException, match="ciphertextMetadata"):
            parse_decrypt(_dump(doc))


@pytest.mark.parametrize(
    "value",
    [
        "SGVsbG8gV29ybGQ",  # missing padding
        "SGVsbG8gV29ybGQh=",  # excess padding
        "SGVsbG8g V29ybGQh",  # whitespace
        "SGVsbG8gV29ybGQh\n",  # newline
        "SGVsbG8_V29ybGQh",  # URL-safe alphabet
        "SGVsbG8-V29ybGQh",
        "SGVs=bG8gV29ybGQh",  # padding in the middle
        "=SGVsbG8gV29ybGQh",
        "QR==",  # non-zero trailing bits
        "QUJ=",
        "SGVsbG8gV29ybGQhé",
    ],
)
def test_non_canonical_base64_is_rejected(value: str) -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["plaintext"] = value
    with pytest.raises(ValidationException, match="plaintext is not valid Base64"):
        parse_encrypt(_dump(doc))


@given(st.binary(max_size=64))
def test_base64_decoder_accepts_exactly_the_canonical_encoding(data: bytes) -> None:
    encoded = base64.b64encode(data).decode()
    assert decode_base64(encoded) == data


@given(st.text(alphabet="AQgwB+/=ab \n-_", max_size=12))
def test_base64_decoder_agrees_with_reencoding(text: str) -> None:
    decoded = decode_base64(text)
    if decoded is not None:
        assert base64.b64encode(decoded).decode() == text


def _parse_or_error(operation: Operation, body: bytes) -> XksRequest | XksError:
    try:
        return parse_request(operation, body)
    except XksError as error:
        return error


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_anything_but_xks_errors(
    body: bytes,
) -> None:
    for operation in Operation:
        outcome = _parse_or_error(operation, body)
        if isinstance(outcome, XksError):
            assert outcome.status in (400, 501)
        else:
            assert outcome.metadata.kms_request_id
            assert outcome.metadata.kms_operation


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=30), _json_values, max_size=6))
def test_arbitrary_json_objects_parse_or_fail_with_xks_errors(
    doc: dict[str, Any],
) -> None:
    body = _dump(doc)
    for operation in Operation:
        outcome = _parse_or_error(operation, body)
        if isinstance(outcome, XksError):
            assert outcome.status in (400, 501)
        else:
            assert outcome.metadata.kms_request_id
            assert outcome.metadata.kms_operation


@given(
    st.dictionaries(
        st.sampled_from(["awsSourceVpc", "kmsViaService", "x", "kmsKeyArn"]),
        st.text(min_size=1, max_size=20),
    ),
    st.binary(min_size=1, max_size=100),
    st.binary(max_size=100),
)
def test_valid_encrypt_requests_round_trip(
    extra: dict[str, str], plaintext: bytes, aad: bytes
) -> None:
    doc = _doc(SPEC_ENCRYPT)
    doc["requestMetadata"].update(extra)
    doc["plaintext"] = _b64(plaintext)
    doc["additionalAuthenticatedData"] = _b64(aad)
    request = parse_encrypt(_dump(doc))
    assert request.plaintext == plaintext
    assert request.additional_authenticated_data == aad
    assert request.metadata.kms_via_service == doc["requestMetadata"]["kmsViaService"]
