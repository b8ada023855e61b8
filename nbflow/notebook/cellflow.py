"""The notebook's flow: task cells in task order, resolved into an engine ``Flow``.

Resolution (DESIGN 2): for each name a task uses, its upstream is the nearest
task *before it* in task order that defines the name; otherwise a
``%%params`` cell (an edge from the parameter) or a ``%%setup`` cell (no
edge: every task gets the setup namespace). A used name none of these define
is a *hidden dependency*. Edges always point backwards, so inferred edges
cannot make a cycle; only an explicit ``--upstream`` can.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import CycleError, HiddenDependencyError, NotebookError
from nbflow.core.flows import Flow
from nbflow.core.tasks import Parameter, Task
from nbflow.notebook.cells import Cell, derive_task_name
from nbflow.notebook.celltasks import CellTask, SetupCode, ShellTask

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nbflow.core.schedules import Schedule

PARAM = "%%params"
SETUP = "%%setup"


@dataclass
class Resolution:
    """Where each task's inputs come from: a task name, ``PARAM`` or ``SETUP``."""

    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    hidden: dict[str, list[str]] = field(default_factory=dict)
    explicit: dict[str, list[str]] = field(default_factory=dict)

    def upstream(self, task: str) -> list[str]:
        sources = [s for s in self.inputs.get(task, {}).values() if s not in (PARAM, SETUP)]
        return list(dict.fromkeys([*sources, *self.explicit.get(task, [])]))


def _cell_key(cell: Cell) -> str:
    if cell.cell_id:
        return f"id:{cell.cell_id}"
    if cell.index is not None:
        return f"index:{cell.index}"
    return "src:" + hashlib.sha256(cell.source.encode()).hexdigest()[:16]


class NotebookFlow:
    """The task, setup and params cells of one notebook, and the flow they make."""

    def __init__(self, name: str = "notebook") -> None:
        self.name = name
        self.schedule: Schedule | None = None
        self._tasks: dict[str, Cell] = {}
        self._task_keys: dict[str, str] = {}  # cell key -> task name
        self._setup: dict[str, Cell] = {}
        self._params: dict[str, Cell] = {}
        # name -> where it was defined outside the flow (for hidden-dependency messages)
        self.outside: dict[str, str] = {}

    # -- cells ----------------------------------------------------------------

    def add(self, cell: Cell) -> str | None:
        if cell.kind == "task":
            return self.define_task(cell)
        if cell.kind == "setup":
            cell.analysis  # noqa: B018 - a syntax error should surface now, naming the cell
            self._setup[_cell_key(cell)] = cell
        elif cell.kind == "params":
            cell.analysis  # noqa: B018
            self._params[_cell_key(cell)] = cell
        else:
            for name in cell.analysis.defines:
                self.outside.setdefault(name, cell.where)
        return None

    def define_task(self, cell: Cell) -> str:
        """Add or redefine a task; its first definition fixes its place in the task order."""
        cell.analysis  # noqa: B018 - a syntax error raises here, before anything changes
        name = derive_task_name(cell)
        key = _cell_key(cell)
        previous_name = self._task_keys.get(key)
        existing = self._tasks.get(name)
        if existing is not None and previous_name != name:
            existing_key = _cell_key(existing)
            if not existing_key.startswith("src:") and not key.startswith("src:") and existing_key != key:
                raise NotebookError(
                    f"{cell.where} and {existing.where} would both be task {name!r}"
                    f"{'' if cell.options.name else ' (the first name each cell defines)'}; "
                    f"give one of them its own name, e.g. %%task {name}_2"
                )
        if previous_name is not None and previous_name != name:
            # The cell was edited into another name: rename in place, keeping its position.
            self._tasks = {(name if n == previous_name else n): c for n, c in self._tasks.items()}
        self._tasks[name] = cell
        self._task_keys[key] = name
        for n in cell.analysis.defines:
            self.outside.pop(n, None)
        return name

    def remove_task(self, name: str) -> None:
        if name not in self._tasks:
            raise NotebookError(f"no task {name!r}; tasks: {', '.join(self._tasks) or '(none)'}")
        del self._tasks[name]
        self._task_keys = {k: n for k, n in self._task_keys.items() if n != name}

    def set_order(self, names: Iterable[str]) -> None:
        """Put tasks in the given order (the document order); unknown names are ignored."""
        wanted = [n for n in names if n in self._tasks]
        rest = [n for n in self._tasks if n not in wanted]
        self._tasks = {n: self._tasks[n] for n in [*wanted, *rest]}

    @property
    def task_names(self) -> list[str]:
        return list(self._tasks)

    def task_cell(self, name: str) -> Cell:
        try:
            return self._tasks[name]
        except KeyError:
            raise NotebookError(f"no task {name!r}; tasks: {', '.join(self._tasks) or '(none)'}") from None

    @property
    def setup_cells(self) -> list[Cell]:
        return list(self._setup.values())

    @property
    def params_cells(self) -> list[Cell]:
        return list(self._params.values())

    def setup_code(self) -> SetupCode:
        return SetupCode(c.source for c in self._setup.values())

    # -- parameters ---------------------------------------------------------------

    def parameter_defaults(self, setup: SetupCode | None = None) -> dict[str, Any]:
        """The values the ``%%params`` cells assign, checked to be JSON-typed."""
        defaults: dict[str, Any] = {}
        for cell in self._params.values():
            names = cell.analysis.defines
            try:
                namespace: dict[str, Any] = {}
                try:
                    exec(compile(cell.analysis.python, cell.where, "exec"), namespace)
                except NameError:
                    # Defaults may use setup imports (e.g. dates); run setup only if needed.
                    namespace = (setup or self.setup_code()).namespace("params")
                    exec(compile(cell.analysis.python, cell.where, "exec"), namespace)
            except Exception as exc:
                raise NotebookError(f"{cell.where} (%%params) failed: {type(exc).__name__}: {exc}") from None
            for name in names:
                value = namespace.get(name)
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    raise NotebookError(
                        f"{cell.where}: parameter {name!r} = {value!r} is not JSON-typed; "
                        "parameters are strings, numbers, booleans, lists or dicts (compute other "
                        "values in a task from the parameter)"
                    ) from None
                defaults[name] = value
        return defaults

    # -- resolution -----------------------------------------------------------------

    def resolve(self, parameter_names: Iterable[str] | None = None) -> Resolution:
        params = set(parameter_names if parameter_names is not None else self._param_names())
        setup_names = {n for c in self._setup.values() for n in c.analysis.defines}
        resolution = Resolution()
        latest: dict[str, str] = {}
        for name, cell in self._tasks.items():
            analysis = cell.analysis
            inputs: dict[str, str] = {}
            hidden: list[str] = []
            for used in [*analysis.uses, *analysis.weak_uses]:
                if used in latest:
                    inputs[used] = latest[used]
                elif used in params:
                    inputs[used] = PARAM
                elif used in setup_names:
                    inputs[used] = SETUP
                elif used in analysis.uses:
                    hidden.append(used)
            resolution.inputs[name] = inputs
            if hidden:
                resolution.hidden[name] = hidden
            explicit = []
            for upstream in cell.options.upstream:
                if upstream not in self._tasks:
                    raise NotebookError(
                        f"{cell.where}: --upstream names no task {upstream!r}; "
                        f"tasks: {', '.join(self._tasks)}"
                    )
                if upstream == name:
                    raise NotebookError(f"{cell.where}: task {name!r} cannot be its own --upstream")
                explicit.append(upstream)
            if explicit:
                resolution.explicit[name] = explicit
            for defined in analysis.defines:
                latest[defined] = name
        return resolution

    def _param_names(self) -> set[str]:
        return {n for c in self._params.values() for n in c.analysis.defines}

    def hidden_message(self, hidden: Mapping[str, list[str]]) -> str:
        lines = []
        for task, names in hidden.items():
            for name in names:
                where = self.outside.get(name)
                origin = (
                    f"defined in {where}, which is not a %%task, %%setup or %%params cell"
                    if where
                    else "defined by no cell of this notebook"
                )
                lines.append(f"  task {task!r} uses {name!r}: {origin}")
        return (
            "hidden dependencies: these names come from outside the flow, so this run "
            "cannot get them:\n" + "\n".join(lines) + "\nMove them into a %%task, %%setup or %%params cell."
        )

    # -- building --------------------------------------------------------------------

    def build(
        self,
        *,
        hidden_values: Mapping[str, Any] | None = None,
        allow_hidden: bool = False,
        setup: SetupCode | None = None,
    ) -> tuple[Flow, Resolution]:
        """The engine flow. Hidden dependencies raise unless ``allow_hidden``
        (the kernel passes their current values as ``hidden_values``)."""
        setup = setup or self.setup_code()
        defaults = self.parameter_defaults(setup)
        resolution = self.resolve(defaults)
        if resolution.hidden and not allow_hidden:
            raise HiddenDependencyError(self.hidden_message(resolution.hidden), hidden=resolution.hidden)
        flow = Flow(self.name, schedule=self.schedule)
        parameters = {name: Parameter(name, default=value) for name, value in defaults.items()}
        for p in parameters.values():
            flow.add_task(p)
        tasks: dict[str, Task] = {}
        for name, cell in self._tasks.items():
            task: Task
            if cell.options.shell:
                task = ShellTask(cell, name)
            else:
                task = CellTask(cell, name, setup=setup, parameter_names=parameters)
                task.hidden = tuple(resolution.hidden.get(name, ()))
            tasks[name] = flow.add_task(task)
        for name, inputs in resolution.inputs.items():
            for used, source in inputs.items():
                if source == PARAM:
                    flow.add_edge(parameters[used], tasks[name], key=used)
                elif source != SETUP:
                    flow.add_edge(tasks[source], tasks[name], key=used)
            for upstream in resolution.explicit.get(name, []):
                flow.add_edge(tasks[upstream], tasks[name])
            for hidden in resolution.hidden.get(name, []):
                if hidden_values is not None and hidden in hidden_values:
                    flow.set_constant(tasks[name], hidden, hidden_values[hidden])
        try:
            flow.validate()
        except CycleError as exc:
            path = " -> ".join(exc.cycle)
            raise NotebookError(
                f"the explicit --upstream edges make a cycle: {path}; remove one of these --upstream options"
            ) from None
        return flow, resolution
