"""``keys ...``: list, create, rotate, enable, disable, restrict and destroy keys.

A key is named by its external key id (the label) or its UUID, as in the host
protocol's KL and KU fields. Nothing here ever reads or prints key material:
the store only hands out ``KeyInfo``, which carries none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from functools import partial

from simulator.console.args import exactly, split_arguments
from simulator.console.context import ConsoleContext
from simulator.console.render import key_values, table
from simulator.console.result import CommandResult, Confirmation, UsageError
from simulator.keystore import KeyInfo, KeyState, KeyUsage

# The only key spec the simulator makes (host protocol field KS).
KEY_SPEC = "AES_256"
DEFAULT_USAGES = frozenset({KeyUsage.ENCRYPT, KeyUsage.DECRYPT})
NO_USAGES = "none"

KeysHandler = Callable[[list[str], ConsoleContext, bool], CommandResult]


def run_keys(words: list[str], ctx: ConsoleContext, interactive: bool) -> CommandResult:
    if not words:
        raise UsageError(
            "usage: keys list|show|create|rotate|enable|disable|usages|destroy"
        )
    handler = _SUBCOMMANDS.get(words[0])
    if handler is None:
        raise UsageError(f"unknown command 'keys {words[0]}'; try 'help keys'")
    return handler(words[1:], ctx, interactive)


def usages_text(usages: frozenset[KeyUsage]) -> str:
    """Usages in the host protocol's canonical order, or ``none``."""
    ordered = [usage.value for usage in KeyUsage if usage in usages]
    return ",".join(ordered) or NO_USAGES


def parse_usages(text: str) -> frozenset[KeyUsage]:
    """``encrypt,decrypt`` (any case) or ``none``."""
    if text.strip().lower() == NO_USAGES:
        return frozenset()
    usages = set()
    for name in text.split(","):
        try:
            usages.add(KeyUsage(name.strip().upper()))
        except ValueError:
            allowed = ",".join(usage.value.lower() for usage in KeyUsage)
            raise UsageError(
                f"unknown usage {name.strip()!r}; use {allowed} or none"
            ) from None
    return frozenset(usages)


def key_details(info: KeyInfo) -> str:
    created = info.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return key_values(
        [
            ("label", info.label),
            ("uuid", info.uuid),
            ("spec", KEY_SPEC),
            ("state", info.state.value),
            ("usages", usages_text(info.usages)),
            ("current version", str(info.current_version)),
            ("versions", ",".join(str(version) for version in info.versions)),
            ("created", created),
        ]
    )


def _list(words: list[str], ctx: ConsoleContext, interactive: bool) -> CommandResult:
    exactly(words, 0, usage="keys list")
    keys = ctx.store.list()  # ordered by label
    if not keys:
        return CommandResult("no keys")
    rows = (
        (k.label, k.state.value, usages_text(k.usages), str(k.current_version), k.uuid)
        for k in keys
    )
    return CommandResult(table(("label", "state", "usages", "version", "uuid"), rows))


def _show(words: list[str], ctx: ConsoleContext, interactive: bool) -> CommandResult:
    (ref,) = exactly(words, 1, usage="keys show <id>")
    return CommandResult(key_details(ctx.store.get(ref)))


def _create(words: list[str], ctx: ConsoleContext, interactive: bool) -> CommandResult:
    usage = "keys create <id> [--usages encrypt,decrypt,wrap,unwrap|none]"
    arguments = split_arguments(words, usage=usage, options=("--usages",))
    (label,) = exactly(arguments.positional, 1, usage=usage)
    given = arguments.options.get("--usages")
    usages = DEFAULT_USAGES if given is None else parse_usages(given)

    return _changed("created", ctx.store.create(label, usages))


def _rotate(words: list[str], ctx: ConsoleContext, interactive: bool) -> CommandResult:
    (ref,) = exactly(words, 1, usage="keys rotate <id>")
    return _changed("rotated", ctx.store.rotate(ref))


def _set_state(
    state: KeyState, words: list[str], ctx: ConsoleContext, interactive: bool
) -> CommandResult:
    verb = "enable" if state is KeyState.ENABLED else "disable"
    (ref,) = exactly(words, 1, usage=f"keys {verb} <id>")
    return _changed(f"{verb}d", ctx.store.set_state(ref, state))


def _set_usages(
    words: list[str], ctx: ConsoleContext, interactive: bool
) -> CommandResult:
    ref, text = exactly(words, 2, usage="keys usages <id> <encrypt,decrypt,...|none>")
    return _changed("updated", ctx.store.set_usages(ref, parse_usages(text)))


def _destroy(words: list[str], ctx: ConsoleContext, interactive: bool) -> CommandResult:
    """Destroying a key makes every ciphertext under it undecryptable for good,
    so a person must type the key id back; a script must say ``--yes``."""
    usage = "keys destroy <id> [--yes]"
    arguments = split_arguments(words, usage=usage, flags=("--yes",))
    (ref,) = exactly(arguments.positional, 1, usage=usage)
    info = ctx.store.get(ref)
    if "--yes" in arguments.flags:
        return _destroy_now(ctx, info)
    if not interactive:
        raise UsageError("keys destroy needs --yes when not run interactively")

    warning = (
        f"Destroying key {info.label} ({info.uuid}) deletes all "
        f"{len(info.versions)} version(s);\n"
        "data encrypted under it can never be decrypted again."
    )
    confirm = Confirmation(
        prompt=f"Type the key id '{info.label}' to confirm: ",
        expected=info.label,
        action=partial(_destroy_now, ctx, info),
    )
    return CommandResult(warning, confirmation=confirm)


def _destroy_now(ctx: ConsoleContext, info: KeyInfo) -> CommandResult:
    # By UUID: the key the operator confirmed, whatever happened since.
    ctx.store.destroy(info.uuid)
    return CommandResult(f"destroyed key {info.label} ({info.uuid})")


def _changed(verb: str, info: KeyInfo) -> CommandResult:
    return CommandResult(f"{verb} key {info.label}\n{key_details(info)}")


_SUBCOMMANDS: dict[str, KeysHandler] = {
    "list": _list,
    "show": _show,
    "create": _create,
    "rotate": _rotate,
    "enable": partial(_set_state, KeyState.ENABLED),
    "disable": partial(_set_state, KeyState.DISABLED),
    "usages": _set_usages,
    "destroy": _destroy,
}
