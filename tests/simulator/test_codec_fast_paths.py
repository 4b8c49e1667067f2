"""The codec's fast checks accept exactly what its rules (regexes) accept.

The codec validates with C-speed string and bytes methods instead of regular
expressions on its hot paths, and decodes a valid frame without checking it
twice. These properties compare each fast check with the rule it replaces,
over arbitrary input, so a character the rule rejects cannot slip through.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from simulator.hostproto import codec
from simulator.hostproto.codec import Frame, encode_frame

# The rules as the protocol states them (docs/host-protocol.md).
_VALUE_RULE = re.compile(r"[\x20-\x3a\x3c-\x5a\x5c\x5e-\x7e]*")
_ID_RULE = re.compile(r"[A-Za-z0-9]{1,16}")
_DECIMAL_RULE = re.compile(r"[0-9]{1,9}")
_COMMAND_RULE = re.compile(r"[A-Z0-9]{4}")

# Mostly ASCII, with the characters each rule singles out, and any other.
ascii_text = st.text(st.characters(max_codepoint=0x7F))
any_text = st.one_of(ascii_text, st.text())
_PIECES = [b"AO", b"ECHO", b"GCEN", b";", b"ID", b"KL", b"x", b"1", b"ao", b"A"]
_ODD_BYTES = [b"\x00", b"\x1f", b"\x7f", b"\x80", b"\xff", b" ", b"\t", b"]", b"["]
bodies = st.lists(st.sampled_from(_PIECES + _ODD_BYTES)).map(b"".join)


@given(any_text)
@example("a;b")
@example("\x7f")
@example("caf\u00e9")
def test_value_check_matches_the_value_rule(value: str) -> None:
    assert codec._values_valid(value) == (_VALUE_RULE.fullmatch(value) is not None)


@given(any_text)
@example("\u0661")  # ARABIC-INDIC DIGIT ONE: a digit, but not ASCII
@example("x" * 17)
def test_correlation_id_check_matches_its_rule(value: str) -> None:
    valid = _ID_RULE.fullmatch(value) is not None
    assert codec.valid_correlation_id(value) == valid


@given(any_text)
@example("\u00b2")  # SUPERSCRIPT TWO: isdigit() is true for it
@example("1234567890")
def test_decimal_check_matches_its_rule(value: str) -> None:
    assert codec._is_decimal(value) == (_DECIMAL_RULE.fullmatch(value) is not None)


@given(st.one_of(st.text(max_size=5), st.sampled_from(["ECHO", "ZZ99", "ech0"])))
def test_command_check_matches_its_rule(command: str) -> None:
    valid = _COMMAND_RULE.fullmatch(command) is not None
    assert codec._command_valid(command) == valid


@given(bodies)
@example(b"AOECHO;ID1;ID2;")
@example(b"AOECHO;X;")
@example(b"AOECHO;ID1")
@example(b"AOECHO;DT\x7f;")
def test_fast_decode_accepts_only_what_the_full_parse_accepts(body: bytes) -> None:
    fast = codec._decode_checked(bytearray(body))
    if fast is not None:
        assert codec._parse_body(body) == fast


@given(
    st.lists(
        st.tuples(
            st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=2),
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)).map(
                lambda v: v.replace(";", "").replace("[", "").replace("]", "")
            ),
        ),
        unique_by=lambda field: field[0],
    ).map(lambda fields: [f for f in fields if f[0] != "AO"])
)
def test_a_valid_frame_takes_the_fast_path(fields: list[tuple[str, str]]) -> None:
    frame = Frame("GCEN", tuple(fields))
    body = bytearray(encode_frame(frame)[1:-1])
    assert codec._decode_checked(body) == frame


def test_a_frame_built_with_a_bad_value_names_the_field() -> None:
    with pytest.raises(codec.CodecError) as caught:
        Frame("ECHO", (("ID", "1"), ("DT", "a\x7fb")))
    assert caught.value.message == (
        "field DT holds a character that is not printable ASCII"
    )


def test_fields_are_found_by_tag_after_decoding_and_building() -> None:
    built = Frame.of("GCDE", ID="9", KV="3")
    decoder = codec.FrameDecoder()
    decoder.receive_data(encode_frame(built))
    decoded = decoder.next_event()
    assert isinstance(decoded, Frame)
    for frame in (built, decoded):
        assert (frame.get("KV"), frame.get("PT"), frame.correlation_id) == (
            "3",
            None,
            "9",
        )
