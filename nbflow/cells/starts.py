"""``%%task --starts FLOW``: a cell that starts a run of another registered flow (flow of flows).

The cell's code runs first, like any task cell, and chooses the started run's parameters:
the dict it binds to ``parameters`` (none bound: the flow's defaults). Then the run is
started through this process's starter (``nbflow.core.flowstarts``: the kernel, ``nbflow
run`` and agents install one that talks to the server) and, unless ``--no-wait``, waited
for; a run that does not succeed fails the task. The outcome (run id, flow, state, message)
is bound to ``FLOW_run`` (``starts_outcome_name``), an output later cells read. With
``--map`` each child starts its own run and ``FLOW_run`` is the list of their outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbflow.cells.cells import starts_outcome_name
from nbflow.cells.celltasks import CellOutputs, CellTask
from nbflow.core.errors import RunError
from nbflow.core.flowstarts import FlowStart, start_flow_run

if TYPE_CHECKING:
    from nbflow.cells.cells import Cell

#: The variable a ``--starts`` cell sets to choose the started run's parameters.
PARAMETERS = "parameters"


class StartsCellTask(CellTask):
    """A ``%%task --starts FLOW`` cell as an engine task: its code, then the started run."""

    def __init__(self, cell: Cell, name: str, **kwargs: Any) -> None:
        super().__init__(cell, name, **kwargs)
        assert cell.options.starts is not None
        self.starts = cell.options.starts
        self.wait = cell.options.wait
        self.outcome_name = starts_outcome_name(self.starts)

    def run(self, **inputs: Any) -> CellOutputs:
        """Run the cell, then start (and wait for) the flow run it asks for; its outputs."""
        outputs = super().run(**inputs)
        request = FlowStart(self.starts, self.parameters(outputs), wait=self.wait)
        outputs[self.outcome_name] = start_flow_run(request)
        return outputs

    def parameters(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The started run's parameters: the cell's ``parameters`` dict, checked."""
        value = outputs.get(PARAMETERS, {}) if PARAMETERS in self.defines else {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise RunError(
                f"{self.where}: `{PARAMETERS}` must be a dict of {self.starts!r}'s parameter names "
                f"and values, e.g. parameters = {{'day': day}}; got {type(value).__name__}"
            )
        return dict(value)

    def options(self) -> dict[str, Any]:
        """The engine's options plus the flow it starts (the widget and the server show them)."""
        return {**super().options(), "starts": self.starts, "wait": self.wait}

    def cache_source(self) -> str:
        """The cell's identity plus the flow it starts: a cached outcome is for that flow only."""
        return f"{super().cache_source()}\n--starts {self.starts} wait={self.wait}"
