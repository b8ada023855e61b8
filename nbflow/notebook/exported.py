"""The runtime of exported flow modules (``%flow export`` / ``nbflow export``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from nbflow.core.schedules import Schedule
from nbflow.notebook.cellflow import NotebookFlow
from nbflow.notebook.cells import Cell, TaskOptions

if TYPE_CHECKING:
    from nbflow.core.flows import Flow


class NotebookModule:
    """Collects the cells of an exported notebook, in order, and builds its flow on demand."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cells: list[Cell] = []
        self._schedule: dict[str, Any] | None = None

    def setup(self, source: str) -> None:
        self._cells.append(Cell("setup", source, where=f"setup cell {len(self._cells) + 1} of {self.name!r}"))

    def params(self, source: str) -> None:
        self._cells.append(
            Cell("params", source, where=f"params cell {len(self._cells) + 1} of {self.name!r}")
        )

    def task(self, name: str, source: str, **options: Any) -> None:
        for key in ("tags", "upstream"):
            if key in options:
                options[key] = tuple(options[key])
        opts = TaskOptions(name=name, **options)
        self._cells.append(
            Cell("task", source, opts, where=f"task {name!r} of {self.name!r}", index=len(self._cells))
        )

    def schedule(self, data: dict[str, Any]) -> None:
        self._schedule = data

    def notebook_flow(self) -> NotebookFlow:
        flow = NotebookFlow(self.name)
        for cell in self._cells:
            flow.add(cell)
        if self._schedule is not None:
            flow.schedule = Schedule.from_dict(self._schedule)
        return flow

    def build(self) -> Flow:
        return self.notebook_flow().build()[0]

    def main(self, argv: list[str] | None = None) -> int:
        from nbflow.notebook.headless import main_for

        return main_for(self.notebook_flow, argv if argv is not None else sys.argv[1:], prog=sys.argv[0])
