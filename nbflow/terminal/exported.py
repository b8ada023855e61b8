"""The runtime of exported flow modules (``%flow export`` / ``nbflow export``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from nbflow.cells.cellflow import NotebookFlow
from nbflow.cells.cells import Cell, TaskOptions
from nbflow.core.schedules import Schedule

if TYPE_CHECKING:
    from nbflow.core.flows import Flow


def _unwrapped(source: str) -> str:
    """A cell's source as the notebook has it (the export writes it after a line break)."""
    return source[1:] if source.startswith("\n") else source


class NotebookModule:
    """Collects the cells of an exported notebook, in order, and builds its flow on demand."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cells: list[Cell] = []
        self._schedule: dict[str, Any] | None = None
        self._flow_handlers: list[tuple[str, str]] = []

    def setup(self, source: str) -> None:
        """A ``%%setup`` cell."""
        self._cells.append(
            Cell("setup", _unwrapped(source), where=f"setup cell {len(self._cells) + 1} of {self.name!r}")
        )

    def params(self, source: str) -> None:
        """A ``%%params`` cell."""
        self._cells.append(
            Cell("params", _unwrapped(source), where=f"params cell {len(self._cells) + 1} of {self.name!r}")
        )

    def task(self, name: str, source: str, **options: Any) -> None:
        """A ``%%task`` cell with its options."""
        for key in ("tags", "upstream", "mutates", "map"):
            if key in options:
                options[key] = tuple(options[key])
        if "handlers" in options:
            options["handlers"] = tuple((str(event), str(name)) for event, name in options["handlers"])
        opts = TaskOptions(name=name, **options)
        self._cells.append(
            Cell(
                "task",
                _unwrapped(source),
                opts,
                where=f"task {name!r} of {self.name!r}",
                index=len(self._cells),
            )
        )

    def on(self, event: str, name: str) -> None:
        """A flow-level handler (``%flow on EVENT NAME``)."""
        self._flow_handlers.append((event, name))

    def schedule(self, data: dict[str, Any]) -> None:
        """The flow's schedule (its ``to_dict`` form)."""
        self._schedule = data

    def notebook_flow(self) -> NotebookFlow:
        """The cells as a ``NotebookFlow``."""
        flow = NotebookFlow(self.name)
        for cell in self._cells:
            flow.add(cell)
        for event, name in self._flow_handlers:
            flow.on(event, name, where=f"flow {self.name!r}")
        if self._schedule is not None:
            flow.schedule = Schedule.from_dict(self._schedule)
        return flow

    def build(self) -> Flow:
        """The engine ``Flow``."""
        return self.notebook_flow().build()[0]

    def main(self, argv: list[str] | None = None) -> int:
        """``python flow.py [options]``: run the flow; the exit code."""
        from nbflow.terminal.headless import main_for

        return main_for(self.notebook_flow, argv if argv is not None else sys.argv[1:], prog=sys.argv[0])
