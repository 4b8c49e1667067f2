"""Plain-text layout for console output: aligned tables and key/value blocks.

Output is meant to be read by people and grepped by scripts, so it is stable:
fixed column order, no colour, no trailing blanks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

COLUMN_GAP = "  "


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns left-aligned to their widest cell, the header in capitals."""
    lines = [[cell.upper() for cell in header], *([*row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(_join_padded(line, widths) for line in lines)


def key_values(pairs: Iterable[tuple[str, str]]) -> str:
    """One ``name  value`` line per pair, the values aligned."""
    pairs = list(pairs)
    if not pairs:
        return ""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name.ljust(width)}{COLUMN_GAP}{value}" for name, value in pairs)


def scalar_text(value: object) -> str:
    """Switches as on/off, floats without trailing zeros, the rest as str."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _join_padded(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
    return COLUMN_GAP.join(padded).rstrip()
