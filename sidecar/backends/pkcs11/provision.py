"""``python -m sidecar.backends.pkcs11.provision``: the conformance keys.

Creates on a token the keys the end-to-end suite and the health check
expect, the same set the simulator seeds (simulator/seed.py), and leaves
alone any that already exist, so running it twice is harmless::

    foo               ENCRYPT,DECRYPT
    encrypt_only_key  ENCRYPT
    decrypt_only_key  DECRYPT
    impotent_key      (no usage)
    xks-health-check  ENCRYPT,DECRYPT   the health probe's test key

With ``--init-token`` a token of that label that does not exist yet is made
first, in the first slot holding an uninitialised token (SoftHSMv2 always
offers one), with the SO PIN from ``--so-pin-file``/``--so-pin-env`` and the
user PIN set from ``--pin-file``/``--pin-env``. It never re-initialises a
token that exists: that would erase its keys.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pkcs11 import TokenFlag
from pkcs11.exceptions import NoSuchToken

from sidecar.backends.pkcs11 import cli_common
from sidecar.backends.pkcs11.keyadmin import AdminError, KeyAdmin
from sidecar.backends.pkcs11.module import LoadedModule
from sidecar.backends.pkcs11.pin import Pin

CONFORMANCE_KEYS: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    ("foo", frozenset({"ENCRYPT", "DECRYPT"})),
    ("encrypt_only_key", frozenset({"ENCRYPT"})),
    ("decrypt_only_key", frozenset({"DECRYPT"})),
    ("impotent_key", frozenset()),
    ("xks-health-check", frozenset({"ENCRYPT", "DECRYPT"})),
)


def provision(admin: KeyAdmin) -> list[str]:
    """Create each missing conformance key; one line per key saying what."""
    lines = []
    for key_id, usages in CONFORMANCE_KEYS:
        if admin.exists(key_id):
            lines.append(f"exists   {key_id}")
            continue
        admin.create(key_id, usages)
        lines.append(f"created  {key_id}")
    return lines


def initialise_token(module: LoadedModule, label: str, so_pin: Pin, pin: Pin) -> None:
    """C_InitToken in the first free slot, then set the user PIN (as SO)."""
    slot = _free_slot(module.lib)
    module.cryptoki.init_token(slot.slot_id, so_pin.reveal(), label)
    token = module.lib.get_token(token_label=label)
    session = token.open(rw=True, so_pin=so_pin.reveal())
    try:
        session.init_pin(pin.reveal())
    finally:
        session.close()


def _free_slot(lib: Any) -> Any:
    for slot in lib.get_slots(token_present=True):
        if not slot.get_token().flags & TokenFlag.TOKEN_INITIALIZED:
            return slot
    raise AdminError("no slot holds an uninitialised token")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sidecar.backends.pkcs11.provision")
    cli_common.add_token_arguments(parser)
    parser.add_argument(
        "--init-token",
        action="store_true",
        help="create the token (by --token-label) if it does not exist",
    )
    so_pin = parser.add_mutually_exclusive_group()
    so_pin.add_argument("--so-pin-file", type=Path, help="file holding the SO PIN")
    so_pin.add_argument("--so-pin-env", help="variable holding the SO PIN")
    return parser


def _ensure_token(module: LoadedModule, args: argparse.Namespace) -> None:
    try:
        cli_common.selector(args).find(module.lib)
    except NoSuchToken:
        if not args.init_token or args.token_label is None:
            raise AdminError(
                "no such token; add --init-token (with --token-label) to create it"
            ) from None
    else:
        return
    if args.so_pin_file is None and args.so_pin_env is None:
        raise AdminError("--init-token needs --so-pin-file or --so-pin-env")
    so_pin = cli_common.read_pin(args.so_pin_file, args.so_pin_env)
    pin = cli_common.read_pin(args.pin_file, args.pin_env)
    initialise_token(module, args.token_label, so_pin, pin)
    print(f"initialised token {args.token_label}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with cli_common.loaded(args.module) as module:
            _ensure_token(module, args)
            with cli_common.key_admin(module, args) as admin:
                print("\n".join(provision(admin)))
    except cli_common.REFUSALS as exc:
        return cli_common.refused(exc)
    return cli_common.OK


if __name__ == "__main__":
    sys.exit(main())
