"""The command handlers in process: the catch-all and what it reveals."""

from __future__ import annotations

import logging

import pytest

from simulator.crypto import GcmResult, HsmCrypto
from simulator.hostproto.codec import Frame, b64
from simulator.hostproto.handlers import HandlerContext, handle
from simulator.keystore import KeyStore
from tests.simulator.conftest import TEST_NODE


class _BrokenCrypto(HsmCrypto):
    """An HSM whose encrypt has a bug; its message must not reach the wire."""

    def encrypt(
        self, ref: str, plaintext: bytes, aad: bytes | None = None
    ) -> GcmResult:
        raise RuntimeError("boom: internal detail")


def test_an_unexpected_error_is_answered_internal_error_and_logged_once(
    sim_store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = HandlerContext(sim_store, _BrokenCrypto(sim_store), TEST_NODE)
    request = Frame.of("GCEN", ID="bug", KL="foo", PT=b64(b"secret"))

    reply = handle(request, ctx)

    assert reply == Frame.of("GCEN", ID="bug", ER="99", EM="internal error")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None


def test_unknown_fields_are_ignored(sim_store: KeyStore) -> None:
    ctx = HandlerContext(sim_store, HsmCrypto(sim_store), TEST_NODE)
    reply = handle(Frame.of("NODE", ID="1", ZZ="future option"), ctx)
    assert reply.get("ER") == "00"


def test_replies_built_without_checks_pass_the_codecs_checks(
    sim_store: KeyStore,
) -> None:
    """GCEN, GCDE and ECHO replies skip Frame validation; they must need none."""
    ctx = HandlerContext(sim_store, HsmCrypto(sim_store), TEST_NODE)
    aad = b64(b"aad")
    sealed = handle(Frame.of("GCEN", ID="e1", KL="foo", PT=b64(b"x"), AD=aad), ctx)
    fields = {tag: sealed.text(tag) for tag in ("KV", "IV", "CT", "TG")}
    opened = handle(Frame.of("GCDE", ID="d1", KL="foo", AD=aad, **fields), ctx)
    echoed = handle(Frame.of("ECHO", ID="c1", DT=b64(b"hi")), ctx)

    for reply in (sealed, opened, echoed):
        assert reply.get("ER") == "00"
        assert Frame(reply.command, reply.fields) == reply
        assert reply.fields[0] == ("ID", reply.get("ID"))
    assert opened.binary("PT") == b"x"
