"""The XKS error tree: statuses, names and rendered bodies (spec, Error codes)."""

from __future__ import annotations

import json

import pytest

from sidecar.xks import errors
from sidecar.xks.errors import (
    ALL_XKS_ERRORS,
    AuthenticationFailedException,
    HttpError,
    MethodNotAllowed,
    XksError,
)

# The spec's Error codes table, transcribed by hand.
SPEC_TABLE = {
    "ValidationException": 400,
    "InvalidStateException": 400,
    "InvalidCiphertextException": 400,
    "InvalidKeyUsageException": 400,
    "AuthenticationFailedException": 401,
    "AccessDeniedException": 403,
    "KeyNotFoundException": 404,
    "InvalidUriPathException": 404,
    "ThrottlingException": 429,
    "UnsupportedOperationException": 501,
    "DependencyTimeoutException": 503,
    "InternalException": 500,
}


def test_every_spec_error_exists_with_its_status_and_name() -> None:
    found = {cls.error_name: cls.status for cls in ALL_XKS_ERRORS}
    assert found == SPEC_TABLE
    for name in SPEC_TABLE:
        cls = getattr(errors, name)
        assert issubclass(cls, XksError)
        assert cls.error_name == cls.__name__


def test_body_is_one_line_json_with_name_and_message() -> None:
    body = errors.KeyNotFoundException("no such key").body()
    assert b"\n" not in body
    assert json.loads(body) == {
        "errorName": "KeyNotFoundException",
        "errorMessage": "no such key",
    }


def test_default_message_is_used_when_none_given() -> None:
    document = json.loads(errors.ThrottlingException().body())
    assert document["errorMessage"] == errors.ThrottlingException.default_message


@pytest.mark.parametrize("cls", ALL_XKS_ERRORS)
def test_default_messages_already_meet_the_spec_limits(cls: type[XksError]) -> None:
    message = cls.default_message
    assert 0 < len(message) < 512
    assert all(0x20 <= ord(c) <= 0x7E for c in message)


def test_message_is_forced_to_printable_ascii() -> None:
    body = errors.ValidationException("bad\nfield é\x00\x7f end").body()
    message = json.loads(body)["errorMessage"]
    assert message == "bad?field ??? end"


def test_message_is_cut_below_512_characters() -> None:
    body = errors.ValidationException("x" * 5000).body()
    assert len(json.loads(body)["errorMessage"]) == 511


def test_quotes_and_backslashes_survive_json_escaping() -> None:
    body = errors.ValidationException('a "quoted" \\ value').body()
    assert json.loads(body)["errorMessage"] == 'a "quoted" \\ value'


def test_reason_stays_out_of_the_body_and_the_message() -> None:
    error = AuthenticationFailedException(reason="unknown access key id AKID123")
    assert b"AKID123" not in error.body()
    assert "AKID123" not in str(error)
    assert error.reason == "unknown access key id AKID123"


def test_method_not_allowed_is_405_outside_the_xks_tree() -> None:
    error = MethodNotAllowed()
    assert error.status == 405
    assert isinstance(error, HttpError)
    assert not isinstance(error, XksError)
    assert (b"allow", b"POST") in error.headers
