"""Properties of the codec over generated frames and hostile byte streams."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from simulator.hostproto.codec import (
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
)

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ";[]")

commands = st.text(_ALNUM, min_size=4, max_size=4)
tags = st.text(_ALNUM, min_size=2, max_size=2).filter(lambda tag: tag != "AO")
values = st.text(_VALUE_CHARS, max_size=40)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    field_tags = draw(st.lists(tags, unique=True, max_size=8))
    return Frame(draw(commands), tuple((tag, draw(values)) for tag in field_tags))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given offsets (taken modulo its length)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame | FrameError]:
    events: list[Frame | FrameError] = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        while (event := decoder.next_event()) is not NEED_DATA:
            events.append(event)
    return events


@given(frames())
def test_decoding_an_encoded_frame_gives_it_back(frame: Frame) -> None:
    assert feed(FrameDecoder(), [encode_frame(frame)]) == [frame]


@given(st.lists(frames(), max_size=10), st.lists(st.integers(min_value=0)))
def test_any_chunking_of_a_stream_gives_the_same_frames(
    sent: list[Frame], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(frame) for frame in sent)
    assert feed(FrameDecoder(), chunked(stream, cuts)) == sent


# Random bytes rarely hold a long bracket-free run, so add some: an opened
# frame that grows past the limit, then more noise.
garbage = st.one_of(
    st.binary(max_size=3000),
    st.builds(
        lambda size, tail: b"[AOECHO;IDq;DT" + b"A" * size + tail,
        st.integers(min_value=0, max_value=3000),
        st.binary(max_size=50),
    ),
)


@given(
    garbage,
    st.lists(st.integers(min_value=0), max_size=30),
    frames(),
)
def test_garbage_yields_only_decoder_events_and_stays_within_the_limit(
    garbage: bytes, cuts: list[int], frame: Frame
) -> None:
    limit = 1024  # above any generated frame, below the garbage's size
    decoder = FrameDecoder(limit)
    for chunk in chunked(garbage, cuts):
        decoder.receive_data(chunk)
        while (event := decoder.next_event()) is not NEED_DATA:
            assert isinstance(event, Frame | FrameError)
        assert decoder.buffered_bytes <= limit

    # Whatever state the garbage left, a well-formed frame after it is found.
    events = feed(decoder, [encode_frame(frame)])
    assert events[-1] == frame


@given(st.lists(st.sampled_from([b"[", b"]", b";", b"AO", b"ECHO", b"ID1", b"x"])))
def test_bracket_soup_never_breaks_the_decoder(pieces: list[bytes]) -> None:
    decoder = FrameDecoder(32)
    events = feed(decoder, pieces)
    assert all(isinstance(event, Frame | FrameError) for event in events)
    assert decoder.buffered_bytes <= 32
