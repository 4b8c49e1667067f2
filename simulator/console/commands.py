"""The console's command layer: one line of text in, text and a status out.

Sans-IO: no asyncssh, no sockets, no logging. The SSH session feeds it lines
and writes what it returns; tests call it directly. Errors never escape as
tracebacks: a wrong command line or a refusal by the key store becomes a one-line
``error: ...`` result with a non-zero status (see ``result.py``).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from simulator.console.context import ConsoleContext
from simulator.console.fault_commands import run_faults
from simulator.console.info_commands import run_node, run_stats
from simulator.console.key_commands import run_keys
from simulator.console.render import key_values
from simulator.console.result import (
    EXIT_FAILED,
    EXIT_USAGE,
    CommandError,
    CommandResult,
    Confirmation,
    UsageError,
)
from simulator.errors import SimulatorError

GroupHandler = Callable[[list[str], ConsoleContext, bool], CommandResult]

HELP: tuple[tuple[str, str], ...] = (
    ("help [keys|faults]", "show the commands"),
    ("keys list", "list keys: label, state, usages, current version, UUID"),
    ("keys show <id>", "show one key; <id> is its label or UUID"),
    (
        "keys create <id> [--usages LIST]",
        "create an AES-256 key (default encrypt,decrypt)",
    ),
    ("keys rotate <id>", "add a key version and make it current"),
    ("keys enable <id>", "allow the key to be used"),
    ("keys disable <id>", "refuse every use of the key (KEY_DISABLED)"),
    ("keys usages <id> <LIST|none>", "set the usages: encrypt,decrypt,wrap,unwrap"),
    ("keys destroy <id> [--yes]", "delete the key and all its versions, for good"),
    ("faults show", "show the injected faults"),
    ("faults latency <ms>", "delay every host-protocol reply"),
    ("faults error-rate <0..1>", "answer this fraction of commands INJECTED_FAULT"),
    ("faults drop-rate <0..1>", "run but never answer this fraction of commands"),
    ("faults refuse on|off", "close new host-protocol connections at once"),
    ("faults outage on|off", "refuse new connections and drop open ones"),
    ("faults clear", "switch every fault off"),
    ("stats [reset]", "host-protocol counters; reset zeroes the per-command ones"),
    ("node", "node id, model, version, key count"),
    ("exit | quit", "end the session"),
)


def run_command(line: str, ctx: ConsoleContext, *, interactive: bool) -> CommandResult:
    """Run one console line against ``ctx``.

    ``interactive`` says a person can answer a confirmation prompt; without one,
    destructive commands need ``--yes``.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        return CommandResult(f"error: {str(exc).lower()}", EXIT_USAGE)
    if not words:
        return CommandResult("")
    return _guarded(lambda: _dispatch(words, ctx, interactive))


def answer_confirmation(confirmation: Confirmation, answer: str) -> CommandResult:
    """Act if the operator typed exactly what was asked, else change nothing."""
    if answer.strip() != confirmation.expected:
        return CommandResult("error: not confirmed; nothing was changed", EXIT_FAILED)
    return _guarded(confirmation.action)


def _dispatch(
    words: list[str], ctx: ConsoleContext, interactive: bool
) -> CommandResult:
    command, rest = words[0], words[1:]
    if command in ("exit", "quit"):
        return CommandResult("", end_session=True)
    if command == "help":
        return _help(rest)
    handler = _GROUPS.get(command)
    if handler is None:
        raise UsageError(f"unknown command {command!r}; type 'help' for the commands")
    return handler(rest, ctx, interactive)


def _guarded(step: Callable[[], CommandResult]) -> CommandResult:
    try:
        return step()
    except CommandError as exc:
        return CommandResult(f"error: {exc}", exc.status)
    except SimulatorError as exc:
        return CommandResult(f"error: {exc}", EXIT_FAILED)


def _help(words: list[str]) -> CommandResult:
    if len(words) > 1 or (words and words[0] not in _GROUPS):
        raise UsageError("usage: help [keys|faults|stats|node]")
    prefix = f"{words[0]} " if words else ""
    entries = [entry for entry in HELP if f"{entry[0]} ".startswith(prefix)]
    return CommandResult(key_values(entries))


_GROUPS: dict[str, GroupHandler] = {
    "keys": run_keys,
    "faults": run_faults,
    "stats": run_stats,
    "node": run_node,
}
