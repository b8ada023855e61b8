"""Plain-text tables for the terminal and the notebook (status, backfills, checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, max_width: int | None = None) -> str:
    """A plain-text table with a rule under the headers.

    With ``max_width``, the widest columns wrap their cells between the items of their
    comma-separated lists (never inside one) until the table fits: a notebook's output area wraps long lines mid-word otherwise.
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if max_width is not None:
        widths = _fitted(cells, widths, max_width)
    lines = []
    for index, row in enumerate(cells):
        wrapped = [_wrap(c, w) for c, w in zip(row, widths, strict=True)]
        for n in range(max(len(parts) for parts in wrapped)):
            parts = [p[n] if n < len(p) else "" for p in wrapped]
            lines.append("  ".join(c.ljust(w) for c, w in zip(parts, widths, strict=True)).rstrip())
        if index == 0:  # the rule goes under the header
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _items(text: str) -> list[str]:
    """A cell's unbreakable pieces: the items of a comma-separated list (``x <- load``)."""
    parts = text.split(", ")
    return [p + ("," if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _fitted(cells: list[list[str]], widths: list[int], max_width: int) -> list[int]:
    """Narrow the widest columns (not below their longest item) until the row fits ``max_width``."""
    widths = list(widths)
    floors = [max([8, *(len(item) for row in cells for item in _items(row[i]))]) for i in range(len(widths))]
    while sum(widths) + 2 * (len(widths) - 1) > max_width:
        i = max(range(len(widths)), key=lambda j: widths[j] - floors[j])
        if widths[i] <= floors[i]:
            break  # every column is down to its longest item: a wider line beats a broken one
        widths[i] -= 1
    return widths


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, broken only between items."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    for item in _items(text):
        if lines and len(lines[-1]) + 1 + len(item) <= width:
            lines[-1] += " " + item
        else:
            lines.append(item)
    return lines


def seconds(value: float | None) -> str:
    """A duration for people: ``850ms``, ``12.5s``, ``3.2m``."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.1f}m"


def shorten(text: str, width: int = 80) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
