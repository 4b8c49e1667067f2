"""``faults ...``: inject the failures the sidecar must survive.

Each setter changes the live ``Faults`` object the host-protocol server
consults on every connection and command, so the change applies to the next
command on any link, with no restart. Each prints the resulting state.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.console.args import exactly, parse_fraction, parse_int, parse_switch
from simulator.console.context import ConsoleContext
from simulator.console.render import key_values, scalar_text
from simulator.console.result import CommandResult, UsageError
from simulator.faults import MAX_LATENCY_MS, Faults

FaultsHandler = Callable[[list[str], Faults], None]


def run_faults(
    words: list[str], ctx: ConsoleContext, interactive: bool
) -> CommandResult:
    if not words:
        raise UsageError(
            "usage: faults show|latency|error-rate|drop-rate|refuse|outage|clear"
        )
    handler = _SUBCOMMANDS.get(words[0])
    if handler is None:
        raise UsageError(f"unknown command 'faults {words[0]}'; try 'help faults'")

    handler(words[1:], ctx.faults)
    return CommandResult(faults_text(ctx.faults))


def faults_text(faults: Faults) -> str:
    return key_values(
        (name.replace("_", " "), scalar_text(value))
        for name, value in faults.describe().items()
    )


def _show(words: list[str], faults: Faults) -> None:
    exactly(words, 0, usage="faults show")


def _latency(words: list[str], faults: Faults) -> None:
    (text,) = exactly(words, 1, usage="faults latency <ms>")
    faults.latency_ms = parse_int(text, name="latency", low=0, high=MAX_LATENCY_MS)


def _error_rate(words: list[str], faults: Faults) -> None:
    (text,) = exactly(words, 1, usage="faults error-rate <0..1>")
    faults.error_rate = parse_fraction(text, name="error rate")


def _drop_rate(words: list[str], faults: Faults) -> None:
    (text,) = exactly(words, 1, usage="faults drop-rate <0..1>")
    faults.drop_rate = parse_fraction(text, name="drop rate")


def _refuse(words: list[str], faults: Faults) -> None:
    (text,) = exactly(words, 1, usage="faults refuse on|off")
    faults.refuse_connections = parse_switch(text, name="faults refuse")


def _outage(words: list[str], faults: Faults) -> None:
    (text,) = exactly(words, 1, usage="faults outage on|off")
    faults.outage = parse_switch(text, name="faults outage")


def _clear(words: list[str], faults: Faults) -> None:
    exactly(words, 0, usage="faults clear")
    faults.clear()


_SUBCOMMANDS: dict[str, FaultsHandler] = {
    "show": _show,
    "latency": _latency,
    "error-rate": _error_rate,
    "drop-rate": _drop_rate,
    "refuse": _refuse,
    "outage": _outage,
    "clear": _clear,
}
