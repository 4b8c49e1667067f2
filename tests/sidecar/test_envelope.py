"""ciphertextMetadata, HSM AAD and CDIV (spec: Encrypt, Appendix C)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.xks.envelope import (
    FORMAT_V1,
    MAX_KEY_VERSION,
    cdiv,
    decode_metadata,
    encode_metadata,
    hsm_aad,
)
from sidecar.xks.errors import InvalidCiphertextException

# Appendix C's worked example (also the Encrypt request/response examples).
SPEC_AAD = b"project=nile,department=marketing"
SPEC_METADATA = base64.b64decode("a2V5X3ZlcnNpb249MQ==")
SPEC_IV = base64.b64decode("HMrlRw85cAJUd5Ax")
SPEC_CIPHERTEXT = base64.b64decode("ghxkK1txeDNn3q8Y")
SPEC_TAG = base64.b64decode("vBxN2ncH1oEkR8WVXpmyYQ==")


def test_spec_example_inputs_match_appendix_c_hex_dump() -> None:
    assert SPEC_METADATA == b"key_version=1"
    assert SPEC_IV.hex() == "1ccae5470f39700254779031"
    assert SPEC_CIPHERTEXT.hex() == "821c642b5b71783367deaf18"
    assert SPEC_TAG.hex() == "bc1c4dda7707d6812447c5955e99b261"
    assert base64.b64decode("cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n") == (
        SPEC_AAD
    )


def test_cdiv_reproduces_the_spec_example() -> None:
    value = cdiv(SPEC_AAD, SPEC_METADATA, SPEC_IV, SPEC_CIPHERTEXT, SPEC_TAG)
    assert value == "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc="
    assert base64.b64decode(value).hex() == (
        "a8703f2260bd8791ec2d15ea0b23e65a0631eedcf2a13a65cc82db3f47cf5ec7"
    )


def test_cdiv_treats_absent_fields_as_empty_strings() -> None:
    joined = cdiv(b"", b"", SPEC_AAD + SPEC_IV, SPEC_CIPHERTEXT, SPEC_TAG)
    assert cdiv(SPEC_AAD, b"", SPEC_IV, SPEC_CIPHERTEXT, SPEC_TAG) == joined


def test_cdiv_changes_with_a_single_bit_flip() -> None:
    flipped = bytes([SPEC_TAG[0] ^ 1]) + SPEC_TAG[1:]
    assert cdiv(SPEC_AAD, SPEC_METADATA, SPEC_IV, SPEC_CIPHERTEXT, flipped) != (
        cdiv(SPEC_AAD, SPEC_METADATA, SPEC_IV, SPEC_CIPHERTEXT, SPEC_TAG)
    )


def test_hsm_aad_has_big_endian_lengths_around_each_field() -> None:
    assert hsm_aad(b"\xaa" * 300, b"md") == (
        b"\x01\x2c" + b"\xaa" * 300 + b"\x02" + b"md"
    )


def test_hsm_aad_of_nothing_is_three_zero_bytes() -> None:
    assert hsm_aad(b"", b"") == b"\x00\x00\x00"


def test_hsm_aad_keeps_aad_and_metadata_apart() -> None:
    # The spec's NOTE: metadata passed as AAD must not decrypt.
    metadata = encode_metadata(1)
    assert hsm_aad(b"", metadata) != hsm_aad(metadata, b"")


def test_hsm_aad_refuses_what_its_lengths_cannot_say() -> None:
    with pytest.raises(ValueError, match="too long"):
        hsm_aad(b"x" * 65536, b"")
    with pytest.raises(ValueError, match="too long"):
        hsm_aad(b"", b"x" * 21)


def test_metadata_layout_is_format_byte_then_32_bit_version() -> None:
    assert encode_metadata(0x01020304) == bytes([FORMAT_V1, 1, 2, 3, 4])


@given(st.integers(min_value=0, max_value=MAX_KEY_VERSION))
def test_metadata_round_trips_and_fits_the_20_byte_limit(version: int) -> None:
    encoded = encode_metadata(version)
    assert len(encoded) <= 20
    assert decode_metadata(encoded).key_version == version


@pytest.mark.parametrize("version", [-1, MAX_KEY_VERSION + 1])
def test_metadata_refuses_versions_outside_32_bits(version: int) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        encode_metadata(version)


@pytest.mark.parametrize(
    "metadata",
    [None, b"", b"\x01\x00\x00\x01", b"\x01\x00\x00\x00\x01\x00", b"\x02\0\0\0\1"],
)
def test_foreign_or_damaged_metadata_is_an_invalid_ciphertext(
    metadata: bytes | None,
) -> None:
    with pytest.raises(InvalidCiphertextException):
        decode_metadata(metadata)


@given(st.binary(max_size=25))
def test_metadata_decoding_never_fails_other_than_invalid_ciphertext(
    data: bytes,
) -> None:
    try:
        decoded = decode_metadata(data)
    except InvalidCiphertextException:
        return
    assert encode_metadata(decoded.key_version) == data
