"""Every host-protocol command and its error paths, end to end over mutual TLS."""

from __future__ import annotations

import base64

import pytest

from simulator.hostproto.codec import ErrorCode, Frame, b64
from simulator.keystore import KeyState, KeyUsage
from tests.simulator.conftest import TEST_NODE, HostClient, RunningSimulator

PLAINTEXT = b"a data key of thirty-two bytes!!"
AAD = b"kms request metadata"


def unb64(value: str | None) -> bytes:
    assert value is not None
    return base64.b64decode(value)


def assert_error(reply: Frame, code: ErrorCode) -> None:
    assert reply.get("ER") == code.value, reply
    assert reply.get("EM"), "an error reply carries a message"


async def encrypt(client: HostClient, label: str, aad: bytes = AAD) -> Frame:
    reply = await client.request(
        Frame.of("GCEN", ID="e1", KL=label, PT=b64(PLAINTEXT), AD=b64(aad))
    )
    assert reply.get("ER") == "00", reply
    return reply


def decrypt_request(sealed: Frame, label: str = "foo", **changes: str) -> Frame:
    fields = {
        "ID": "d1",
        "KL": label,
        "KV": sealed.text("KV"),
        "IV": sealed.text("IV"),
        "CT": sealed.text("CT"),
        "TG": sealed.text("TG"),
        "AD": b64(AAD),
    }
    fields.update(changes)
    return Frame.of("GCDE", **{tag: value for tag, value in fields.items() if value})


# -- ECHO and NODE -------------------------------------------------------------


async def test_echo_returns_the_data_and_the_id(simulator: RunningSimulator) -> None:
    client = await simulator.connect()
    reply = await client.request(Frame.of("ECHO", ID="abc", DT=b64(b"hello")))
    assert reply == Frame.of("ECHO", ID="abc", ER="00", DT=b64(b"hello"))


async def test_echo_without_data_or_id_answers_ok(simulator: RunningSimulator) -> None:
    client = await simulator.connect()
    assert await client.request(Frame.of("ECHO")) == Frame.of("ECHO", ER="00")


async def test_echo_with_non_base64_data_is_invalid(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    assert_error(
        await client.request(Frame.of("ECHO", DT="not base64!")),
        ErrorCode.INVALID_FIELD,
    )


async def test_node_reports_the_configured_identity(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    reply = await client.request(Frame.of("NODE", ID="n"))
    assert reply.get("ER") == "00"
    assert (reply.get("NI"), reply.get("MD"), reply.get("VR"), reply.get("SN")) == (
        TEST_NODE.node_id,
        TEST_NODE.model,
        TEST_NODE.version,
        TEST_NODE.serial,
    )


# -- KINF ----------------------------------------------------------------------


async def test_key_info_by_label_and_by_uuid_agree(simulator: RunningSimulator) -> None:
    client = await simulator.connect()
    by_label = await client.request(Frame.of("KINF", ID="1", KL="foo"))
    by_uuid = await client.request(Frame.of("KINF", ID="1", KU=by_label.text("KU")))

    assert by_label == by_uuid
    assert by_label.get("ER") == "00"
    assert by_label.get("KL") == "foo"
    assert by_label.get("KS") == "AES_256"
    assert by_label.get("KG") == "ENCRYPT,DECRYPT"
    assert by_label.get("ST") == "ENABLED"
    assert by_label.get("KV") == "1"


async def test_key_info_lists_no_usage_as_empty(simulator: RunningSimulator) -> None:
    client = await simulator.connect()
    reply = await client.request(Frame.of("KINF", KL="impotent_key"))
    assert reply.get("ER") == "00"
    assert reply.get("KG") == ""


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, ErrorCode.MISSING_FIELD),
        ({"KL": "no-such-key"}, ErrorCode.KEY_NOT_FOUND),
        ({"KU": "00000000-0000-4000-8000-000000000000"}, ErrorCode.KEY_NOT_FOUND),
        ({"KU": "not-a-uuid"}, ErrorCode.INVALID_FIELD),
        ({"KL": "has space"}, ErrorCode.INVALID_FIELD),
        (
            {"KL": "foo", "KU": "00000000-0000-4000-8000-000000000000"},
            ErrorCode.INVALID_FIELD,
        ),
    ],
)
async def test_key_info_refuses_bad_references(
    simulator: RunningSimulator, fields: dict[str, str], code: ErrorCode
) -> None:
    client = await simulator.connect()
    reply = await client.request(Frame.of("KINF", ID="k", **fields))
    assert_error(reply, code)
    assert reply.get("ID") == "k"


# -- GCEN and GCDE ---------------------------------------------------------------


async def test_encrypt_then_decrypt_returns_the_plaintext(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    sealed = await encrypt(client, "foo")
    assert sealed.get("KV") == "1"
    assert len(unb64(sealed.get("IV"))) == 12
    assert len(unb64(sealed.get("TG"))) == 16
    assert unb64(sealed.get("CT")) != PLAINTEXT

    opened = await client.request(decrypt_request(sealed))
    assert opened == Frame.of("GCDE", ID="d1", ER="00", PT=b64(PLAINTEXT))


async def test_encrypt_by_uuid_and_without_aad(simulator: RunningSimulator) -> None:
    client = await simulator.connect()
    key_uuid = simulator.store.get("foo").uuid
    sealed = await client.request(Frame.of("GCEN", KU=key_uuid, PT=b64(b"x")))
    assert sealed.get("ER") == "00"

    opened = await client.request(decrypt_request(sealed, label="", KU=key_uuid, AD=""))
    assert unb64(opened.get("PT")) == b"x"


async def test_each_encryption_draws_a_fresh_iv(simulator: RunningSimulator) -> None:
    client = await simulator.connect()
    first, second = await encrypt(client, "foo"), await encrypt(client, "foo")
    assert first.get("IV") != second.get("IV")


@pytest.mark.parametrize(
    "changes",
    [
        {"AD": b64(b"other aad")},
        {"AD": ""},
        {"TG": b64(bytes(16))},
        {"CT": b64(b"\x00" * 32)},
    ],
    ids=["wrong-aad", "missing-aad", "wrong-tag", "wrong-ciphertext"],
)
async def test_decrypt_failure_says_nothing_more(
    simulator: RunningSimulator, changes: dict[str, str]
) -> None:
    client = await simulator.connect()
    sealed = await encrypt(client, "foo")
    reply = await client.request(decrypt_request(sealed, **changes))
    assert reply == Frame.of("GCDE", ID="d1", ER="20", EM="decryption failed")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"IV": b64(bytes(8))}, ErrorCode.INVALID_FIELD),
        ({"TG": b64(bytes(12))}, ErrorCode.INVALID_FIELD),
        ({"CT": "***"}, ErrorCode.INVALID_FIELD),
        ({"KV": "one"}, ErrorCode.INVALID_FIELD),
        ({"KV": "7"}, ErrorCode.KEY_VERSION_NOT_FOUND),
        ({"IV": ""}, ErrorCode.MISSING_FIELD),
        ({"KV": ""}, ErrorCode.MISSING_FIELD),
    ],
)
async def test_decrypt_refuses_bad_fields(
    simulator: RunningSimulator, changes: dict[str, str], code: ErrorCode
) -> None:
    client = await simulator.connect()
    sealed = await encrypt(client, "foo")
    assert_error(await client.request(decrypt_request(sealed, **changes)), code)


async def test_encrypt_refuses_missing_or_bad_plaintext(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    missing = await client.request(Frame.of("GCEN", KL="foo"))
    bad = await client.request(Frame.of("GCEN", KL="foo", PT="%%%"))
    assert_error(missing, ErrorCode.MISSING_FIELD)
    assert_error(bad, ErrorCode.INVALID_FIELD)


async def test_encrypt_with_unknown_key_is_key_not_found(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    reply = await client.request(Frame.of("GCEN", KL="nope", PT=b64(b"x")))
    assert_error(reply, ErrorCode.KEY_NOT_FOUND)


# -- key lifecycle seen through the protocol ------------------------------------


async def test_rotation_shows_a_new_version_and_old_ciphertext_still_opens(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    old = await encrypt(client, "foo")

    simulator.store.rotate("foo")

    info = await client.request(Frame.of("KINF", KL="foo"))
    new = await encrypt(client, "foo")
    assert info.get("KV") == "2"
    assert new.get("KV") == "2"
    for sealed in (old, new):
        opened = await client.request(decrypt_request(sealed))
        assert unb64(opened.get("PT")) == PLAINTEXT


async def test_disabled_key_is_refused_but_still_described(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    sealed = await encrypt(client, "foo")

    simulator.store.set_state("foo", KeyState.DISABLED)

    info = await client.request(Frame.of("KINF", KL="foo"))
    assert info.get("ST") == "DISABLED"
    encrypted = await client.request(Frame.of("GCEN", KL="foo", PT=b64(b"x")))
    assert_error(encrypted, ErrorCode.KEY_DISABLED)
    assert_error(await client.request(decrypt_request(sealed)), ErrorCode.KEY_DISABLED)


@pytest.mark.parametrize(
    ("label", "command"),
    [
        ("decrypt_only_key", "GCEN"),
        ("encrypt_only_key", "GCDE"),
        ("impotent_key", "GCEN"),
        ("impotent_key", "GCDE"),
    ],
)
async def test_forbidden_usage_is_refused(
    simulator: RunningSimulator, label: str, command: str
) -> None:
    client = await simulator.connect()
    # A real ciphertext under the key, made while it still permitted both.
    simulator.store.set_usages(label, {KeyUsage.ENCRYPT, KeyUsage.DECRYPT})
    sealed = await encrypt(client, label)
    original = {
        "decrypt_only_key": {KeyUsage.DECRYPT},
        "encrypt_only_key": {KeyUsage.ENCRYPT},
        "impotent_key": set(),
    }[label]
    simulator.store.set_usages(label, original)

    if command == "GCEN":
        request = Frame.of("GCEN", KL=label, PT=b64(b"x"))
    else:
        request = decrypt_request(sealed, label=label)
    assert_error(await client.request(request), ErrorCode.USAGE_NOT_PERMITTED)


async def test_a_closed_store_answers_internal_error(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    simulator.store.close()
    reply = await client.request(Frame.of("KINF", ID="z", KL="foo"))
    assert_error(reply, ErrorCode.INTERNAL_ERROR)
    assert reply.get("ID") == "z"
