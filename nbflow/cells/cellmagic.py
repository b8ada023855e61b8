"""``%%time`` and ``%%timeit`` as the body of a ``%%task`` cell.

IPython runs a cell magic's body in the shell's user namespace, not in the
task's namespace, so a task whose body starts with ``%%time`` would lose its
outputs. nbflow runs these two itself, in the task's namespace, and prints
what IPython prints.
"""

from __future__ import annotations

import os
import re
import time
import timeit
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbflow.cells.magiccode import strip_options

if TYPE_CHECKING:
    from collections.abc import Callable

_LEADING = re.compile(r"^\s*%%(time|timeit)\b(.*)$")


@dataclass(frozen=True)
class CellMagic:
    """A leading ``%%time`` / ``%%timeit`` line: the magic, its options, the code after it."""

    magic: str
    line: str
    body: str

    def setup_code(self) -> str:
        """The setup statement of a ``%%timeit`` line (after its options)."""
        return strip_options(self.magic, self.line) if self.magic == "timeit" else ""

    def option(self, flag: str) -> int | None:
        """The number given to ``-FLAG`` on the magic line, if any."""
        match = re.search(rf"-{flag}\s*(\d+)", self.line)
        return int(match.group(1)) if match else None


def leading_cell_magic(source: str) -> CellMagic | None:
    """The ``%%time`` / ``%%timeit`` a task body starts with, if any."""
    # IPython drops leading blank lines before it looks for a cell magic; so do we.
    first, _, rest = source.lstrip("\n").partition("\n")
    match = _LEADING.match(first)
    if match is None:
        return None
    return CellMagic(match.group(1), match.group(2).strip(), rest)


def timed(run: Callable[[], Any]) -> Any:
    """``%%time``: run, then print CPU and wall time as IPython does."""
    from IPython.core.magics.execution import _format_time

    wall, before = time.perf_counter(), os.times()
    try:
        return run()
    finally:
        after = os.times()
        user, system = after.user - before.user, after.system - before.system
        print(
            f"CPU times: user {_format_time(user)}, sys: {_format_time(system)}, "
            f"total: {_format_time(user + system)}"
        )
        print(f"Wall time: {_format_time(time.perf_counter() - wall)}")


def time_it(magic: CellMagic, python: str, namespace: dict[str, Any]) -> None:
    """``%%timeit``: IPython's loop counts and summary, the body run in a copy of the namespace."""
    from IPython.core.magics.execution import TimeitResult

    scope = dict(namespace)  # %%timeit defines nothing in the cell's namespace
    timer = timeit.Timer(stmt=python, setup=magic.setup_code() or "pass", globals=scope)
    number = magic.option("n")
    if number is None:
        number, _ = timer.autorange()
    repeat = magic.option("r") or 7
    runs = timer.repeat(repeat=repeat, number=number)
    best, worst = min(runs) / number, max(runs) / number
    result = TimeitResult(number, repeat, best, worst, runs, 0.0, 3)
    print(result)
