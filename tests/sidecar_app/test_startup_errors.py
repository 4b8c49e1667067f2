"""Which failures at start-up are the operator's to fix (one line, exit 1)."""

from __future__ import annotations

from sidecar.backends.cryptohub.settings import CryptoHubConfigError
from sidecar.backends.pkcs11.module import Pkcs11ModuleError
from sidecar.serving import startup_problems


def test_a_token_refusing_the_pin_is_a_startup_problem_not_a_bug() -> None:
    refused = Pkcs11ModuleError("the token refused the user PIN")

    assert startup_problems(ExceptionGroup("start", [refused])) == [refused]


def test_unusable_cryptohub_settings_are_a_startup_problem() -> None:
    unusable = CryptoHubConfigError("cannot read the client key")

    assert startup_problems(unusable) == [unusable]


def test_an_unexpected_error_is_reported_as_a_bug() -> None:
    assert startup_problems(ExceptionGroup("start", [KeyError("x")])) is None
