"""The two parser codecs, sans-IO: same requests out, whatever the split."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.dataplane.codec import (
    HttpProtocolError,
    RequestBody,
    RequestHead,
    ServerCodec,
    Signal,
)
from sidecar.dataplane.codec_h11 import H11Codec
from sidecar.dataplane.codec_httptools import HttptoolsCodec
from sidecar.dataplane.messages import HttpResponse
from sidecar.dataplane.settings import HttpLimits
from tests.dataplane.client import raw_request

CodecFactory = Callable[[HttpLimits], ServerCodec]
CODECS: list[CodecFactory] = [HttptoolsCodec, H11Codec]
LIMITS = HttpLimits()


def _requests(codec: ServerCodec, chunks: list[bytes]) -> list[tuple[str, bytes]]:
    """Feed ``chunks``; answer each request as it completes, as the loop does."""
    received: list[tuple[str, bytes]] = []
    path = ""
    pending = list(chunks)
    while True:
        event = codec.next_event()
        if event is Signal.NEED_DATA:
            if not pending:
                return received
            codec.receive_data(pending.pop(0))
        elif isinstance(event, RequestHead):
            path = event.target
        elif isinstance(event, RequestBody):
            received.append((path, event.body))
            codec.response_bytes(HttpResponse(200), close=False)
            codec.start_next_request()
        else:
            return received


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


bodies = st.lists(st.binary(max_size=300), min_size=1, max_size=5)


@pytest.mark.parametrize("codec_class", CODECS)
@settings(max_examples=60, deadline=None)
@given(bodies=bodies, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_pipelined_requests_survive_any_split(
    codec_class: CodecFactory, bodies: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(raw_request(f"/{n}", body) for n, body in enumerate(bodies))

    received = _requests(codec_class(LIMITS), _split(data, cuts))

    assert received == [(f"/{n}", body) for n, body in enumerate(bodies)]


@pytest.mark.parametrize("codec_class", CODECS)
def test_head_trickling_in_without_end_is_cut_off(
    codec_class: CodecFactory,
) -> None:
    limits = HttpLimits(max_header_bytes=1024)
    codec = codec_class(limits)
    codec.receive_data(b"POST / HTTP/1.1\r\nX-Slow: ")

    with pytest.raises(HttpProtocolError) as raised:  # noqa: PT012
        for _ in range(200):
            codec.receive_data(b"v" * 16)
            codec.next_event()

    assert raised.value.status == 431


@pytest.mark.parametrize("codec_class", CODECS)
def test_conflicting_content_lengths_are_a_bad_request(
    codec_class: CodecFactory,
) -> None:
    codec = codec_class(LIMITS)
    codec.receive_data(
        b"POST / HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    )

    with pytest.raises(HttpProtocolError) as raised:
        codec.next_event()

    assert raised.value.status == 400


@pytest.mark.parametrize("codec_class", CODECS)
def test_peer_closing_mid_request_is_an_error_and_between_requests_is_not(
    codec_class: CodecFactory,
) -> None:
    whole, cut = codec_class(LIMITS), codec_class(LIMITS)
    whole.receive_data(raw_request("/", b"ab"))
    cut.receive_data(raw_request("/", b"ab")[:-1])

    assert _requests(whole, [b""]) == [("/", b"ab")]
    assert whole.next_event() is Signal.PEER_CLOSED
    cut.receive_data(b"")
    with pytest.raises(HttpProtocolError):
        _requests(cut, [])


@pytest.mark.parametrize("codec_class", CODECS)
@pytest.mark.parametrize("coding", ["chunked", "gzip"])
def test_any_transfer_encoding_gets_411(codec_class: CodecFactory, coding: str) -> None:
    codec = codec_class(LIMITS)
    codec.receive_data(
        f"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\n\r\n".encode()
    )

    with pytest.raises(HttpProtocolError) as raised:
        codec.next_event()

    assert raised.value.status == 411
