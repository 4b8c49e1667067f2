"""Small helpers to pick a console command's arguments apart.

The grammar is tiny (a few positionals, ``--usages LIST`` and ``--yes``), so a
hand-written splitter gives clearer one-line errors than ``argparse``, which
prints usage blocks and wants to exit the process.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from simulator.console.result import UsageError


@dataclass
class Arguments:
    positional: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def split_arguments(
    words: Sequence[str],
    *,
    usage: str,
    options: Collection[str] = (),
    flags: Collection[str] = (),
) -> Arguments:
    """Sort words into positionals, ``--name value`` options and ``--flag``s."""
    parsed = Arguments()
    rest = iter(words)
    for word in rest:
        name, has_value, value = word.partition("=")
        if not word.startswith("--"):
            parsed.positional.append(word)
        elif name in options:
            parsed.options[name] = value if has_value else next(rest, "")
            if not parsed.options[name]:
                raise UsageError(f"{name} needs a value; usage: {usage}")
        elif word in flags:
            parsed.flags.add(word)
        else:
            raise UsageError(f"unknown option {name!r}; usage: {usage}")
    return parsed


def exactly(words: Sequence[str], count: int, *, usage: str) -> list[str]:
    """The positionals, when there are exactly ``count`` of them."""
    if len(words) != count:
        raise UsageError(f"usage: {usage}")
    return list(words)


def parse_int(text: str, *, name: str, low: int, high: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low} and {high}, not {value}")
    return value


def parse_fraction(text: str, *, name: str) -> float:
    """A probability in [0, 1]; ``nan`` and ``inf`` are refused."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name} must be a number from 0 to 1, not {text!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{name} must be a number from 0 to 1, not {text!r}")
    return value


def parse_switch(text: str, *, name: str) -> bool:
    switch = text.lower()
    if switch not in ("on", "off"):
        raise UsageError(f"{name} takes on or off, not {text!r}")
    return switch == "on"
