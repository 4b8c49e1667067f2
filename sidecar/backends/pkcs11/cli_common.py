"""What the admin and provisioning commands share: token options, a session.

PINs come from a file (``--pin-file``, mode 600) or an environment variable
(``--pin-env NAME``), never from the command line itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from pkcs11.exceptions import PKCS11Error

from sidecar.backends.pkcs11.attributes import attribute_mapper
from sidecar.backends.pkcs11.cryptoki import Pkcs11CallError
from sidecar.backends.pkcs11.keyadmin import AdminError, KeyAdmin
from sidecar.backends.pkcs11.module import (
    LoadedModule,
    Pkcs11ModuleError,
    acquire_module,
    release_module,
)
from sidecar.backends.pkcs11.pin import Pin, PinSourceError, read_pin_env, read_pin_file
from sidecar.backends.pkcs11.pool import LoginRefused, TokenSelector, open_logged_in
from sidecar.backends.pkcs11.settings import KeyIdAttribute

# Exit statuses, as the simulator's console has them.
OK: Final = 0
REFUSED: Final = 1  # no such key, label taken, PKCS#11 failure, ...
USAGE: Final = 2  # argparse's own status for a wrong command line


# What the admin tools report as "refused" (one line, exit 1): the operator's
# mistakes and the token's answers, never a bug's traceback.
REFUSALS: Final = (
    AdminError,
    PinSourceError,
    LoginRefused,
    Pkcs11ModuleError,
    Pkcs11CallError,
    PKCS11Error,
)


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--module", required=True, help="the PKCS#11 library (.so)")
    token = parser.add_mutually_exclusive_group(required=True)
    token.add_argument("--token-label", help="the token, by label")
    token.add_argument("--token-serial", help="the token, by serial number")
    pin = parser.add_mutually_exclusive_group(required=True)
    pin.add_argument("--pin-file", type=Path, help="file holding the user PIN")
    pin.add_argument("--pin-env", help="environment variable holding the user PIN")
    parser.add_argument(
        "--key-id-attribute",
        choices=[a.value for a in KeyIdAttribute],
        default=KeyIdAttribute.LABEL.value,
        help="attribute that carries the external key id (default: label)",
    )


def read_pin(path: Path | None, variable: str | None) -> Pin:
    if path is not None:
        return read_pin_file(path)
    assert variable is not None  # argparse requires one of the two
    return read_pin_env(variable)


def selector(args: argparse.Namespace) -> TokenSelector:
    return TokenSelector(args.token_label, args.token_serial)


@contextmanager
def loaded(module_path: str) -> Iterator[LoadedModule]:
    module = acquire_module(module_path)
    try:
        yield module
    finally:
        release_module(module)


@contextmanager
def key_admin(module: LoadedModule, args: argparse.Namespace) -> Iterator[KeyAdmin]:
    """A KeyAdmin on a read-write session, logged in as the user."""
    pin = read_pin(args.pin_file, args.pin_env)
    token = selector(args).find(module.lib)
    lease = open_logged_in(module, token, pin, attribute_mapper(), rw=True)
    try:
        yield KeyAdmin(lease, KeyIdAttribute(args.key_id_attribute))
    finally:
        lease.session.close()


def fail(message: str) -> int:
    """Report a refused command the way the simulator's console does."""
    print(f"error: {message}", file=sys.stderr)
    return REFUSED


def refused(exc: Exception) -> int:
    if isinstance(exc, AdminError):
        return fail(str(exc))
    return fail(f"{type(exc).__name__}: {exc}")
