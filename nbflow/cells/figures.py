"""Matplotlib figures belong to the task that made them.

pyplot keeps one global list of open figures per process. So that nothing
leaks from one task into the next (as Jupyter's inline backend closes a
cell's figures after it), every task that may draw holds ``PYPLOT_LOCK``
while it runs and, before it lets go, shows its open figures (recorded by
``cells/ipython.py`` as the task's displays) and closes them. Under the
sequential executor the lock is never contended; on threads, tasks that may
draw take turns, and the others still run in parallel.
"""

from __future__ import annotations

import re
import sys
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from contextlib import AbstractContextManager

PYPLOT_LOCK = threading.RLock()

# Code that reaches pyplot directly or through the libraries that draw with it.
_DRAWS = re.compile(r"\b(plt|pyplot|matplotlib|sns|seaborn|pylab)\b|\.(plot|hist|imshow|boxplot|scatter)\b")
# Functions and classes made by notebook code (a kernel's __main__, a task or setup cell).
_NOTEBOOK_MODULES = frozenset({"__main__"})


def may_draw(python: str, inputs: Mapping[str, Any]) -> bool:
    """True when the task's code mentions plotting, or it calls code the notebook defined
    (a helper function may plot): such a task holds ``PYPLOT_LOCK``."""
    if _DRAWS.search(python):
        return True
    return any(callable(v) and getattr(v, "__module__", None) in _NOTEBOOK_MODULES for v in inputs.values())


def pyplot_turn(draws: bool) -> AbstractContextManager[Any]:
    """Hold the pyplot lock while a drawing task runs."""
    return _locked() if draws else nullcontext()


@contextmanager
def _locked() -> Iterator[None]:
    with PYPLOT_LOCK:
        yield


# Backends that draw into files or notebook output: their figures are done when the cell is.
_STATIC_BACKENDS = frozenset({"agg", "pdf", "svg", "ps", "cairo", "pgf", "template"})


def flush_figures() -> None:
    """Show every open pyplot figure as a display of the running task, then close them all
    (as the inline backend does after a cell). An interactive backend chosen in a kernel
    (``%matplotlib widget``, a GUI) keeps its live figures."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    backend = str(pyplot.get_backend()).lower()
    if "inline" not in backend and backend not in _STATIC_BACKENDS:
        return
    from matplotlib._pylab_helpers import Gcf

    figures = [manager.canvas.figure for manager in Gcf.get_all_fig_managers()]
    try:
        for figure in figures:
            if len(figure.get_children()) > 1:  # more than the background patch: something was drawn
                _publish(figure)
    finally:
        pyplot.close("all")


def _publish(figure: Any) -> None:
    from IPython.core.pylabtools import print_figure

    from nbflow.cells.ipython import task_shell

    png = print_figure(figure, "png", bbox_inches="tight")
    width, height = figure.get_size_inches() * figure.dpi
    task_shell().display_pub.publish(
        data={
            "image/png": png,
            "text/plain": f"<Figure size {width:g}x{height:g} with {len(figure.axes)} Axes>",
        },
        metadata={},
    )


def save_figures(results: Mapping[str, Any], directory: str | Path) -> list[Path]:
    """Write each task's figures as ``TASK.png`` (``TASK_2.png``, ... for more) into ``directory``.

    ``results`` maps task names to their outputs (a ``CellOutputs`` for cell tasks)."""
    folder = Path(directory)
    written: list[Path] = []
    for task, outputs in results.items():
        for number, png in enumerate(getattr(outputs, "figures", None) or [], start=1):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / (f"{task}.png" if number == 1 else f"{task}_{number}.png")
            path.write_bytes(png)
            written.append(path)
    return written
