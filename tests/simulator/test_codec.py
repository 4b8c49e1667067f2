"""The host-protocol codec, in process: frames, fields, replies, the decoder."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulator.hostproto.codec import (
    NEED_DATA,
    CodecError,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    b64,
    encode_frame,
    reply_error,
    reply_ok,
    reply_to_frame_error,
    result_code,
)


def decode_all(data: bytes, max_frame_bytes: int = 1024) -> list[Frame | FrameError]:
    decoder = FrameDecoder(max_frame_bytes)
    decoder.receive_data(data)
    return drain(decoder)


def drain(decoder: FrameDecoder) -> list[Frame | FrameError]:
    events: list[Frame | FrameError] = []
    while (event := decoder.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def codes(events: list[Frame | FrameError]) -> list[str]:
    return [e.code.value if isinstance(e, FrameError) else e.command for e in events]


# -- Frame and encoding ----------------------------------------------------------


def test_encoding_follows_the_excrypt_layout() -> None:
    frame = Frame.of("GCEN", ID="7", KL="foo", PT=b64(b"hi"))
    assert encode_frame(frame) == b"[AOGCEN;ID7;KLfoo;PTaGk=;]"


def test_a_frame_without_fields_encodes_its_command_only() -> None:
    assert encode_frame(Frame("NODE")) == b"[AONODE;]"


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        ("ECH", ()),
        ("echo", ()),
        ("ECHO", (("I", "1"),)),
        ("ECHO", (("id", "1"),)),
        ("ECHO", (("AO", "NODE"),)),
        ("ECHO", (("DT", "a;b"),)),
        ("ECHO", (("DT", "a]"),)),
        ("ECHO", (("DT", "line\n"),)),
        ("ECHO", (("DT", "caf\u00e9"),)),
        ("ECHO", (("ID", "1"), ("ID", "2"))),
    ],
)
def test_frames_that_could_not_be_encoded_faithfully_are_refused(
    command: str, fields: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(CodecError) as caught:
        Frame(command, fields)
    assert caught.value.code is ErrorCode.MALFORMED_FRAME


def test_repr_hides_plaintext_and_aad() -> None:
    frame = Frame.of("GCEN", KL="foo", PT="c2VjcmV0", AD="YWFk")
    assert "c2VjcmV0" not in repr(frame)
    assert "YWFk" not in repr(frame)
    assert "foo" in repr(frame)


# -- typed field access -----------------------------------------------------------


def test_field_accessors_convert_values() -> None:
    frame = Frame.of("GCDE", KV="12", CT=b64(b"\x00\xff"), EM="x y")
    assert frame.integer("KV") == 12
    assert frame.binary("CT") == b"\x00\xff"
    assert frame.text("EM") == "x y"
    assert frame.optional_binary("AD") is None
    assert frame.get("AD") is None


@pytest.mark.parametrize(
    ("read", "code"),
    [
        (lambda f: f.text("PT"), ErrorCode.MISSING_FIELD),
        (lambda f: f.binary("PT"), ErrorCode.MISSING_FIELD),
        (lambda f: f.integer("XX"), ErrorCode.MISSING_FIELD),
        (lambda f: f.integer("KV"), ErrorCode.INVALID_FIELD),
        (lambda f: f.integer("NG"), ErrorCode.INVALID_FIELD),
        (lambda f: f.binary("CT"), ErrorCode.INVALID_FIELD),
        (lambda f: f.optional_binary("AD"), ErrorCode.INVALID_FIELD),
    ],
)
def test_field_accessors_raise_the_code_to_answer_with(
    read: Callable[[Frame], object], code: ErrorCode
) -> None:
    frame = Frame.of("GCDE", KV="1.5", NG="-1", CT="abc", AD="a b=")
    with pytest.raises(CodecError) as caught:
        read(frame)
    assert caught.value.code is code


def test_only_a_valid_correlation_id_is_used() -> None:
    assert Frame.of("ECHO", ID="Ab12").correlation_id == "Ab12"
    assert Frame.of("ECHO", ID="a-b").correlation_id is None
    assert Frame.of("ECHO", ID="x" * 17).correlation_id is None
    assert Frame.of("ECHO").correlation_id is None


# -- replies ------------------------------------------------------------------------


def test_ok_reply_echoes_command_and_id_then_result() -> None:
    reply = reply_ok(Frame.of("NODE", ID="q", XX="ignored"), NI="n1")
    assert reply == Frame.of("NODE", ID="q", ER="00", NI="n1")
    assert result_code(reply) is ErrorCode.OK


def test_error_reply_cleans_its_message() -> None:
    reply = reply_error(
        Frame("ECHO"), ErrorCode.INVALID_FIELD, "bad [x]; \u00e9\n" + "z" * 500
    )
    message = reply.text("EM")
    assert message.startswith("bad (x), ??")
    assert len(message) <= 160
    assert result_code(reply) is ErrorCode.INVALID_FIELD


def test_error_reply_to_unreadable_bytes_uses_the_erro_command() -> None:
    reply = reply_to_frame_error(FrameError(ErrorCode.MALFORMED_FRAME, "junk"))
    assert reply == Frame.of("ERRO", ER="01", EM="junk")


def test_result_code_of_a_reply_without_er_is_malformed() -> None:
    with pytest.raises(CodecError):
        result_code(Frame.of("ECHO", ER="77"))


# -- decoder -------------------------------------------------------------------------


def test_decoder_yields_frames_in_order() -> None:
    events = decode_all(b"[AOECHO;ID1;][AONODE;ID2;]")
    assert events == [Frame.of("ECHO", ID="1"), Frame.of("NODE", ID="2")]


def test_decoder_needs_data_for_a_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"[AOECHO;ID")
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(b"1;]")
    assert decoder.next_event() == Frame.of("ECHO", ID="1")


def test_whitespace_between_frames_is_ignored() -> None:
    assert codes(decode_all(b"\r\n[AOECHO;]\n  [AONODE;]\r\n")) == ["ECHO", "NODE"]


def test_garbage_is_reported_once_then_the_next_frame_decodes() -> None:
    decoder = FrameDecoder()
    for chunk in (b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n[AOECHO;]"):
        decoder.receive_data(chunk)
    events = drain(decoder)
    assert codes(events) == ["01", "ECHO"]


def test_garbage_split_across_reads_is_still_one_error() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"abc")
    first = drain(decoder)
    decoder.receive_data(b"def[AOECHO;]")
    assert codes(first + drain(decoder)) == ["01", "ECHO"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[AOECHO;IDa1;DTaGk=]", "last field not terminated"),
        (b"[ECHO;IDa1;]", "frame must start with AO and the command"),
        (b"[AOECHO;IDa1;X;]", "field shorter than its tag"),
        (b"[AOECHO;IDa1;DT\xff;]", "frame is not ASCII"),
        (b"[AOEC;IDa1;]", "command must be 4 of A-Z 0-9"),
        (b"[AOECHO;IDa1;dt12;]", "tag must be 2 of A-Z 0-9"),
        (b"[AOECHO;IDa1;KLx;KLy;]", "duplicate tag KL"),
    ],
)
def test_malformed_frames_are_reported_with_their_id(raw: bytes, message: str) -> None:
    events = decode_all(raw + b"[AONODE;]")
    error = events[0]
    assert isinstance(error, FrameError)
    assert (error.code, error.message, error.correlation_id) == (
        ErrorCode.MALFORMED_FRAME,
        message,
        "a1",
    )
    assert events[1] == Frame("NODE")


def test_unknown_commands_decode_as_frames() -> None:
    assert decode_all(b"[AOZZ99;]") == [Frame("ZZ99")]


def test_a_frame_cut_short_by_the_next_one_is_malformed() -> None:
    events = decode_all(b"[AOGCEN;IDc9;PTabc[AOECHO;ID2;]")
    assert isinstance(events[0], FrameError)
    assert (events[0].command, events[0].correlation_id) == ("GCEN", "c9")
    assert events[1] == Frame.of("ECHO", ID="2")


def test_oversized_frame_is_reported_and_skipped_without_buffering() -> None:
    decoder = FrameDecoder(64)
    decoder.receive_data(b"[AOECHO;IDbig;DT" + b"A" * 60)
    too_large = decoder.next_event()
    assert isinstance(too_large, FrameError)
    assert (too_large.code, too_large.correlation_id, too_large.command) == (
        ErrorCode.FRAME_TOO_LARGE,
        "big",
        "ECHO",
    )
    for _ in range(100):
        decoder.receive_data(b"A" * 1000)
        assert decoder.next_event() is NEED_DATA
        assert decoder.buffered_bytes == 0
    decoder.receive_data(b"AA;][AONODE;]")
    assert drain(decoder) == [Frame("NODE")]


def test_an_unterminated_oversized_frame_ends_at_the_next_frame() -> None:
    events = decode_all(b"[AOECHO;DT" + b"A" * 100 + b"[AONODE;]", max_frame_bytes=64)
    assert codes(events) == ["02", "NODE"]


def test_complete_but_oversized_frame_in_one_read_is_too_large() -> None:
    events = decode_all(b"[AOECHO;DT" + b"A" * 100 + b";][AONODE;]", max_frame_bytes=64)
    assert codes(events) == ["02", "NODE"]


def test_a_limit_too_small_for_any_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        FrameDecoder(4)
