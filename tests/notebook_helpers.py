"""Helpers for notebook tests: a real in-process IPython shell and notebooks written to disk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import nbformat
from IPython.core.interactiveshell import InteractiveShell

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

# A tiny frame type so the tests need no pandas: dropna/describe behave like pandas'.
FRAME_SETUP = """%%setup
class Frame:
    def __init__(self, rows):
        self.rows = list(rows)
    def dropna(self):
        return Frame(r for r in self.rows if r is not None)
    def describe(self):
        return {"count": len(self.rows), "sum": sum(self.rows)}
    def __eq__(self, other):
        return isinstance(other, Frame) and other.rows == self.rows
    def __repr__(self):
        return f"Frame({self.rows})"

def load():
    return Frame([3, None, 1, 4, None])

plotted = []
def plot(frame):
    print("plotting", len(frame.rows), "rows")
    return len(frame.rows)
"""

DF_CELLS = [
    "%load_ext nbflow",
    FRAME_SETUP,
    "%%task load_data\ndf = load()",
    "%%task clean\ndf = df.dropna()",
    "%%task\nsummary = df.describe()",
    "%%task\nn_plotted = plot(df)",
]


class Kernel:
    """An in-process IPython shell with nbflow loaded; cells run like in Jupyter."""

    def __init__(self) -> None:
        InteractiveShell.clear_instance()
        self.shell = InteractiveShell.instance()
        self.count = 0

    def run(self, source: str, *, cell_id: str | None = None, expect_error: bool = False) -> Any:
        self.count += 1
        result = self.shell.run_cell(source, store_history=True, cell_id=cell_id or f"cell-{self.count}")
        failed = not result.success
        if failed != expect_error:
            error = result.error_in_exec or result.error_before_exec
            raise AssertionError(
                f"cell {'failed' if failed else 'succeeded'} unexpectedly: {error!r}\n{source}"
            )
        return result

    def run_all(self, cells: Sequence[str]) -> None:
        for i, cell in enumerate(cells):
            self.run(cell, cell_id=f"cell-{i}")

    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns

    @property
    def session(self) -> Any:
        from nbflow.kernel.magics import get_session

        return get_session(self.shell)

    def close(self) -> None:
        from nbflow.kernel.magics import unload_ipython_extension

        unload_ipython_extension(self.shell)
        InteractiveShell.clear_instance()


def kernel() -> Iterator[Kernel]:
    k = Kernel()
    try:
        yield k
    finally:
        k.close()


def write_notebook(path: Path, cells: Sequence[str], **metadata: Any) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata.update(metadata)
    nbformat.write(nb, str(path))
    return path


def edges(structure: dict) -> set[tuple[str, str, str | None]]:
    return {(e["upstream"], e["downstream"], e["key"]) for e in structure["edges"]}
