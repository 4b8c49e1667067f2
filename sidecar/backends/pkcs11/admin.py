"""``python -m sidecar.backends.pkcs11.admin``: keys on a PKCS#11 token.

The same ``keys`` commands as the simulator's admin console (docs/
simulator-console.md), so operators, and the end-to-end suite, manage both
backends alike::

    python -m sidecar.backends.pkcs11.admin --module M --token-label T \\
        --pin-file F keys rotate foo

    keys list                        every key: state, usages, version
    keys show <id>
    keys create <id> [--usages LIST] LIST: encrypt,decrypt,wrap,unwrap | none
    keys rotate <id>                 add version N+1 and make it current
    keys enable <id> | disable <id>
    keys usages <id> <LIST|none>
    keys destroy <id> --yes          every version; there is no prompt

Exit status 0: done; 1: refused (no such key, label taken, token error);
2: wrong command line. Nothing printed is key material.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Final

from sidecar.backends.pkcs11 import cli_common
from sidecar.backends.pkcs11.keyadmin import AdminError, KeyAdmin, KeyInfo, parse_usages

_USAGE_ORDER: Final = ("ENCRYPT", "DECRYPT", "WRAP", "UNWRAP")


def render(info: KeyInfo) -> str:
    """``keys show``'s block, as the simulator's console prints it."""
    rows = (
        ("label", info.key_id),
        ("spec", info.key_spec),
        ("state", "ENABLED" if info.enabled else "DISABLED"),
        ("usages", _usages(info.usages)),
        ("current version", str(info.current_version)),
        ("versions", ",".join(str(v) for v in info.versions)),
        ("end date", info.end_date.isoformat() if info.end_date else "-"),
    )
    return "\n".join(f"{name:<17}{value}" for name, value in rows)


def render_list(keys: Sequence[KeyInfo]) -> str:
    width = max([len("LABEL"), *(len(k.key_id) for k in keys)]) + 2
    lines = [f"{'LABEL':<{width}}{'STATE':<10}{'USAGES':<28}VERSION"]
    for k in keys:
        state = "ENABLED" if k.enabled else "DISABLED"
        lines.append(
            f"{k.key_id:<{width}}{state:<10}{_usages(k.usages):<28}{k.current_version}"
        )
    return "\n".join(lines)


def _usages(usages: frozenset[str]) -> str:
    return ",".join(u for u in _USAGE_ORDER if u in usages) or "none"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sidecar.backends.pkcs11.admin")
    cli_common.add_token_arguments(parser)
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys").add_subparsers(dest="command", required=True)
    keys.add_parser("list")
    for name in ("show", "rotate", "enable", "disable"):
        keys.add_parser(name).add_argument("key_id")
    create = keys.add_parser("create")
    create.add_argument("key_id")
    create.add_argument("--usages", default="encrypt,decrypt")
    usages = keys.add_parser("usages")
    usages.add_argument("key_id")
    usages.add_argument("usages")
    destroy = keys.add_parser("destroy")
    destroy.add_argument("key_id")
    destroy.add_argument("--yes", action="store_true")
    return parser


def _run(admin: KeyAdmin, args: argparse.Namespace) -> str:
    """Do the command; the text to print."""
    command: str = args.command
    if command == "list":
        return render_list(admin.list_keys())
    key_id: str = args.key_id
    actions: dict[str, tuple[str, Callable[[], KeyInfo]]] = {
        "show": ("", lambda: admin.show(key_id)),
        "create": ("created", lambda: admin.create(key_id, parse_usages(args.usages))),
        "rotate": ("rotated", lambda: admin.rotate(key_id)),
        "enable": ("enabled", lambda: admin.set_enabled(key_id, True)),
        "disable": ("disabled", lambda: admin.set_enabled(key_id, False)),
        "usages": (
            "updated",
            lambda: admin.set_usages(key_id, parse_usages(args.usages)),
        ),
    }
    if command == "destroy":
        if not args.yes:
            raise AdminError("not confirmed (add --yes); nothing was changed")
        return f"destroyed key {key_id} ({admin.destroy(key_id)} version(s))"
    verb, action = actions[command]
    shown = render(action())
    return f"{verb} key {key_id}\n{shown}" if verb else shown


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with (
            cli_common.loaded(args.module) as module,
            cli_common.key_admin(module, args) as admin,
        ):
            print(_run(admin, args))
    except cli_common.REFUSALS as exc:
        return cli_common.refused(exc)
    return cli_common.OK


if __name__ == "__main__":
    sys.exit(main())
