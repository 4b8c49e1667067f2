"""The PKCS#11 backend's pure rules: labels, state, settings, PIN, error map."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pkcs11 import Attribute, KeyType
from pkcs11 import exceptions as p11

from sidecar.backends.pkcs11 import (
    Pin,
    PinSourceError,
    Pkcs11ConfigError,
    Pkcs11Settings,
    read_pin_env,
    read_pin_file,
)
from sidecar.backends.pkcs11 import attributes as attrs
from sidecar.backends.pkcs11.cryptoki import Pkcs11CallError
from sidecar.backends.pkcs11.errors import Damage, ckr_of, damage, xks_error
from sidecar.backends.pkcs11.labels import (
    check_external_key_id,
    parse_label,
    version_label,
)
from sidecar.xks.errors import (
    InternalException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
)

KEY_IDS = st.text(st.sampled_from("abcXYZ019._-"), min_size=1, max_size=128)
TODAY = datetime.date(2025, 6, 15)


# --- labels ----------------------------------------------------------------------


def test_version_one_is_the_bare_key_id() -> None:
    assert version_label("foo", 1) == "foo"
    assert version_label("foo", 2) == "foo#v2"
    assert parse_label("foo") == ("foo", 1)
    assert parse_label("foo#v12") == ("foo", 12)


@given(KEY_IDS, st.integers(1, 0xFFFF_FFFF))
def test_every_version_label_parses_back(key_id: str, version: int) -> None:
    assert parse_label(version_label(key_id, version)) == (key_id, version)


@pytest.mark.parametrize(
    "label", ["foo#v1", "foo#v02", "foo#v0", "foo#v", "foo#x2", "#v2", "a b", ""]
)
def test_labels_outside_the_convention_name_no_version(label: str) -> None:
    assert parse_label(label) is None


@pytest.mark.parametrize("key_id", ["", "a" * 129, "foo#v2", "key/1", "kéy"])
def test_only_spec_external_key_ids_are_accepted(key_id: str) -> None:
    with pytest.raises(ValueError, match="not an external key id"):
        check_external_key_id(key_id)


# --- state and spec from attributes ----------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "enabled"),
    [
        (None, None, True),
        (None, TODAY, True),  # the end date is the last day of use
        (None, TODAY - datetime.timedelta(days=1), False),
        (TODAY, None, True),
        (TODAY + datetime.timedelta(days=1), None, False),
    ],
)
def test_validity_dates_decide_the_state(
    start: datetime.date | None, end: datetime.date | None, enabled: bool
) -> None:
    dates = {Attribute.START_DATE: start, Attribute.END_DATE: end}

    assert attrs.is_enabled(dates, TODAY) is enabled


@pytest.mark.parametrize(
    ("raw", "date"),
    [
        (b"", None),
        (b"00000000", None),
        (b"        ", None),
        (b"20250615", TODAY),
    ],
)
def test_unset_dates_in_any_spelling_read_as_unset(
    raw: bytes, date: datetime.date | None
) -> None:
    mapper = attrs.attribute_mapper()

    assert mapper.unpack_attributes(Attribute.END_DATE, raw) == date


def test_the_key_spec_comes_from_type_and_length() -> None:
    def spec(key_type: KeyType, length: int) -> str:
        return attrs.key_spec(
            {Attribute.KEY_TYPE: key_type, Attribute.VALUE_LEN: length}
        )

    assert spec(KeyType.AES, 32) == "AES_256"
    assert spec(KeyType.AES, 16) == "AES_128"
    assert spec(KeyType.DES3, 24).startswith("UNSUPPORTED")


# --- settings and PIN ---------------------------------------------------------------


def test_the_pin_is_masked_everywhere() -> None:
    pin = Pin("1234-secret")
    settings = Pkcs11Settings(Path("/lib.so"), pin, token_label="t")

    for text in (repr(pin), str(pin), f"{pin}", repr(settings)):
        assert "1234-secret" not in text
    assert pin.reveal() == "1234-secret"


def test_settings_need_exactly_one_token_selector() -> None:
    with pytest.raises(Pkcs11ConfigError, match="exactly one"):
        Pkcs11Settings(Path("/lib.so"), Pin("1"))
    with pytest.raises(Pkcs11ConfigError, match="exactly one"):
        Pkcs11Settings(Path("/lib.so"), Pin("1"), token_label="a", token_serial="b")


def test_settings_default_to_the_150_ms_deadline() -> None:
    settings = Pkcs11Settings(Path("/lib.so"), Pin("1"), token_serial="1234")

    assert settings.call_timeout_s == 0.150
    assert settings.token_name == "1234"


def test_a_pin_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pin"
    path.write_text("1234\n")
    path.chmod(0o644)

    with pytest.raises(PinSourceError, match="chmod 600"):
        read_pin_file(path)
    path.chmod(0o600)
    assert read_pin_file(path).reveal() == "1234"


def test_a_pin_variable_must_be_set() -> None:
    with pytest.raises(PinSourceError):
        read_pin_env("XKS_TEST_PIN", {})
    assert read_pin_env("XKS_TEST_PIN", {"XKS_TEST_PIN": "99"}).reveal() == "99"


# --- PKCS#11 failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (p11.PKCS11Error("Unmapped error code 0x68"), InvalidKeyUsageException),
        (p11.EncryptedDataInvalid(), InvalidCiphertextException),
        (p11.EncryptedDataLenRange(), InvalidCiphertextException),
        (p11.DeviceError(), InternalException),
        (p11.GeneralError(), InternalException),
        (Pkcs11CallError("C_Login", 0x30), InternalException),
    ],
)
def test_pkcs11_failures_map_to_the_spec_errors(
    exc: Exception, expected: type[Exception]
) -> None:
    error = xks_error(exc, "decrypt")

    assert type(error) is expected
    assert "decrypt" in (error.reason or "")


@pytest.mark.parametrize(
    ("exc", "harm"),
    [
        (p11.SessionHandleInvalid(), Damage.GONE),
        (p11.PKCS11Error("Initialisation error (not initialized)."), Damage.GONE),
        (p11.DeviceRemoved(), Damage.GONE),
        (p11.DeviceError(), Damage.BROKEN),
        (p11.UserNotLoggedIn(), Damage.BROKEN),
        (p11.EncryptedDataInvalid(), Damage.NONE),
        (p11.NoSuchKey(), Damage.NONE),
    ],
)
def test_failures_are_judged_by_what_they_did_to_the_session(
    exc: Exception, harm: Damage
) -> None:
    assert damage(exc) is harm


def test_an_unmapped_code_is_read_from_the_message() -> None:
    assert ckr_of(p11.PKCS11Error("Unmapped error code 0x1A0")) == 0x1A0
    assert ckr_of(p11.PKCS11Error("something else")) is None
