"""Answer bodies are read exactly as ``json.loads`` reads them, whatever the
encoding, though UTF-8 takes a faster path."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.bench.outcome import Kind, Outcome, _json_object, classify
from sidecar.bench.payloads import Body, Expectation, Operation

HEALTH = Body(Operation.HEALTH, "/kms/xks/v1/health", b"{}", Expectation())
ERROR = {"errorName": "ThrottlingException"}


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(ERROR).encode("utf-16"),
        json.dumps(ERROR).encode("utf-32-le"),
        b"\xef\xbb\xbf" + json.dumps(ERROR).encode(),  # UTF-8 with a BOM
        b'{"errorName":"ThrottlingException","x":"\xed\xa0\x80"}',  # a surrogate
    ],
)
def test_bodies_json_loads_accepts_are_still_read(body: bytes) -> None:
    assert classify(429, body, HEALTH) == Outcome(Kind.ERROR, "ThrottlingException")


def reference(body: bytes) -> dict[str, object] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


@given(
    st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda doc, encoding: json.dumps(doc).encode(encoding),
            st.dictionaries(st.text(max_size=4), st.text(max_size=8), max_size=3),
            st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
        ),
    )
)
def test_any_body_parses_as_json_loads_parses_it(body: bytes) -> None:
    # The parse itself (private) is compared: classify's other rules are
    # test_outcomes' business.
    assert _json_object(body) == reference(body)
