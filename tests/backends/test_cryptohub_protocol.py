"""Request frames built as bytes are exactly the codec's frames.

``protocol.py`` builds request bytes itself rather than through
``codec.Frame`` and ``codec.encode_frame`` (it is on every command's path);
these tests hold it to the codec: the same bytes for the same fields, and a
key id the codec refuses is refused.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.backends.cryptohub.protocol import (
    NO_FIELDS,
    decrypt_fields,
    encrypt_fields,
    key_info_fields,
    request_frame,
)
from simulator.hostproto.codec import CodecError, Frame, b64, encode_frame

# Printable ASCII less ; [ ], the codec's value alphabet.
key_ids = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=";[]"),
    max_size=40,
)
correlation_ids = st.integers(1, 2**64 - 1).map(lambda n: format(n, "x"))


def codec_bytes(command: str, correlation_id: str, *fields: tuple[str, str]) -> bytes:
    return encode_frame(Frame(command, (("ID", correlation_id), *fields)))


@given(key_ids, st.binary(max_size=300), st.binary(max_size=300), correlation_ids)
def test_encrypt_request_is_the_codec_frame(
    key_id: str, plaintext: bytes, aad: bytes, correlation_id: str
) -> None:
    fields = [("KL", key_id), ("PT", b64(plaintext))]
    if aad:
        fields.append(("AD", b64(aad)))

    built = request_frame(
        "GCEN", correlation_id, encrypt_fields(key_id, plaintext, aad)
    )

    assert built == codec_bytes("GCEN", correlation_id, *fields)


@given(
    key_ids,
    st.integers(0, 999_999_999),
    st.binary(min_size=12, max_size=12),
    st.binary(max_size=300),
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=300),
)
def test_decrypt_request_is_the_codec_frame(
    key_id: str, version: int, iv: bytes, ciphertext: bytes, tag: bytes, aad: bytes
) -> None:
    fields = [
        ("KL", key_id),
        ("KV", str(version)),
        ("IV", b64(iv)),
        ("CT", b64(ciphertext)),
        ("TG", b64(tag)),
    ]
    if aad:
        fields.append(("AD", b64(aad)))

    built = decrypt_fields(key_id, version, iv, ciphertext, tag, aad)

    assert request_frame("GCDE", "7f", built) == codec_bytes("GCDE", "7f", *fields)


def test_key_info_and_bare_requests_are_the_codec_frames() -> None:
    assert request_frame("KINF", "1", key_info_fields("foo")) == codec_bytes(
        "KINF", "1", ("KL", "foo")
    )
    assert request_frame("NODE", "a", NO_FIELDS) == codec_bytes("NODE", "a")


@pytest.mark.parametrize("key_id", ["semi;colon", "[x", "x]", "tab\there", "é"])
def test_a_key_id_the_codec_refuses_is_refused(key_id: str) -> None:
    with pytest.raises(CodecError):
        encrypt_fields(key_id, b"x", b"")
    with pytest.raises(CodecError):
        key_info_fields(key_id)


def test_a_command_the_codec_refuses_is_refused() -> None:
    with pytest.raises(CodecError):
        request_frame("gcen", "1", NO_FIELDS)
