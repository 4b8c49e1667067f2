"""``stats`` and ``node``: what the simulator has done and what it is."""

from __future__ import annotations

from collections.abc import Mapping

from simulator.console.args import exactly
from simulator.console.context import ConsoleContext
from simulator.console.render import key_values, scalar_text, table
from simulator.console.result import CommandResult, UsageError

# The snapshot entry holding per-command figures; every other entry is a
# scalar (uptime, connection counts). See ``simulator.stats.Stats.snapshot``.
_PER_COMMAND = "commands"


def run_stats(
    words: list[str], ctx: ConsoleContext, interactive: bool
) -> CommandResult:
    if words == ["reset"]:
        ctx.stats.reset()
        return CommandResult("command counters reset")
    if words:
        raise UsageError("usage: stats [reset]")
    return CommandResult(stats_text(ctx.stats.snapshot()))


def run_node(words: list[str], ctx: ConsoleContext, interactive: bool) -> CommandResult:
    exactly(words, 0, usage="node")
    return CommandResult(
        key_values(
            [
                ("node id", ctx.node_id),
                ("model", ctx.model),
                ("version", ctx.version),
                ("keys", str(len(ctx.store.list()))),
            ]
        )
    )


def stats_text(snapshot: Mapping[str, object]) -> str:
    """Scalars as a key/value block, then one table row per host command."""
    scalars = key_values(
        (name.replace("_", " "), scalar_text(value))
        for name, value in snapshot.items()
        if name != _PER_COMMAND
    )
    per_command = snapshot.get(_PER_COMMAND)
    if not isinstance(per_command, Mapping) or not per_command:
        return f"{scalars}\n\nno host-protocol commands yet"
    return f"{scalars}\n\n{_command_table(per_command)}"


def _command_table(per_command: Mapping[str, object]) -> str:
    figures = {name: _as_mapping(entry) for name, entry in per_command.items()}
    columns = list(next(iter(figures.values())))
    rows = (
        (name, *(scalar_text(entry.get(column, "")) for column in columns))
        for name, entry in figures.items()
    )
    header = ("command", *(column.replace("_", " ") for column in columns))
    return table(header, rows)


def _as_mapping(entry: object) -> Mapping[str, object]:
    return entry if isinstance(entry, Mapping) else {}
