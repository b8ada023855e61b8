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
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.cells.celltasks import CellTask, SetupCode, ShellTask
from nbflow.cells.guard import Detections
from nbflow.cells.handlers import check_defined, check_handler_name, event_states, handlers_for
from nbflow.cells.naming import derive_task_name, unique_name
from nbflow.cells.starts import StartsCellTask
from nbflow.core.errors import CycleError, HiddenDependencyError, NotebookError
from nbflow.core.flows import Flow
from nbflow.core.tasks import Parameter, Task

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nbflow.cells.cells import Cell
    from nbflow.core.schedules import Schedule

PARAM = "%%params"
SETUP = "%%setup"


@dataclass
class Resolution:
    """Where each task's inputs come from: a task name, ``PARAM`` or ``SETUP``."""

    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    hidden: dict[str, list[str]] = field(default_factory=dict)
    explicit: dict[str, list[str]] = field(default_factory=dict)
    #: task -> {input it changes in place: how nbflow knows ("declared", "detected",
    #: "method call", "item assignment")}
    changes: dict[str, dict[str, str]] = field(default_factory=dict)
    #: task -> earlier readers of an input it changes in place: they must run before it
    ordering: dict[str, list[str]] = field(default_factory=dict)

    def upstream(self, task: str) -> list[str]:
        """The tasks ``task`` runs after: its inputs' sources, explicit and ordering edges."""
        sources = [s for s in self.inputs.get(task, {}).values() if s not in (PARAM, SETUP)]
        return list(dict.fromkeys([*sources, *self.explicit.get(task, []), *self.ordering.get(task, [])]))

    def undeclared(self, task: str) -> list[str]:
        """Inputs ``task`` is known to change in place without saying so in its cell."""
        return [n for n, how in self.changes.get(task, {}).items() if how in ("detected", "method call")]


def cell_task(
    cell: Cell,
    name: str,
    *,
    setup: SetupCode,
    parameter_names: Iterable[str] = (),
    changes: Mapping[str, str] | None = None,
) -> Task:
    """The engine task of a ``%%task`` cell: a shell script, a cell that starts another flow's
    run (``--starts``), or a Python cell."""
    if cell.options.shell:
        return ShellTask(cell, name)
    kind = StartsCellTask if cell.options.starts is not None else CellTask
    return kind(cell, name, setup=setup, parameter_names=parameter_names, changes=changes)


def _is_stable_key(key: str) -> bool:
    """A Jupyter cell id or a document position: two such keys are surely two cells."""
    return not key.startswith("src:")


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
        # explicit names of cells not yet added (a headless run reads them first)
        self.reserved: set[str] = set()
        #: inputs tasks were seen to change in place (the mutation guard's memory)
        self.detections = Detections()
        #: What the last ``define_task`` did that the user should hear about (or None).
        self.last_note: str | None = None
        #: flow-level handlers, (event, function name): ``%flow on failed notify``
        self.flow_handlers: list[tuple[str, str]] = []

    # -- cells ----------------------------------------------------------------

    def on(self, event: str, name: str, *, where: str = "%flow on") -> None:
        """Call the ``%%setup`` function ``name`` when the flow run reaches ``event`` (once per pair)."""
        event_states(event, where=where)
        pair = (event.lower(), check_handler_name(name, where=where))
        if pair not in self.flow_handlers:
            self.flow_handlers.append(pair)

    def add(self, cell: Cell) -> str | None:
        """Add a cell of any kind; the task name for a task cell."""
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
        """Add or redefine a task; its first definition fixes its place in the task order.

        A derived name taken by another cell gets ``_2``, ``_3``, ... (document order);
        an explicit name taken by a derived one moves that one aside; two cells with the
        same explicit name are an error when both are known to be different cells.
        """
        cell.analysis  # noqa: B018 - a syntax error raises here, before anything changes
        self.last_note = None
        key = _cell_key(cell)
        previous = self._task_keys.get(key)
        if cell.options.name:
            name = cell.options.name
            self._claim_explicit(name, cell, key, previous)
        else:
            base = derive_task_name(cell)
            if (
                previous is not None
                and not self._tasks[previous].options.name
                and re.fullmatch(rf"{re.escape(base)}(_\d+)?", previous)
            ):
                name = previous  # the same cell again: keep its name, suffix and all
            else:
                taken = {n for n in [*self._tasks, *self.reserved] if n != previous}
                name = unique_name(base, taken)
        if previous is not None and previous != name:
            # The cell was edited into another name: rename in place, keeping its position.
            self._rename(previous, name)
        self._tasks[name] = cell
        self._task_keys[key] = name
        self.reserved.discard(name)
        for n in cell.analysis.defines:
            self.outside.pop(n, None)
        return name

    def _claim_explicit(self, name: str, cell: Cell, key: str, previous: str | None) -> None:
        holder = self._tasks.get(name)
        if holder is None or previous == name:
            return
        holder_key = next(k for k, n in self._task_keys.items() if n == name)
        if not holder.options.name:
            moved = unique_name(name, {*self._tasks, *self.reserved, name})
            self._rename(name, moved)
            self.last_note = f"task {name!r} (derived from {holder.where}) is now {moved!r}: {cell.where} names itself {name!r}"
            return
        if _is_stable_key(holder_key) and _is_stable_key(key):
            raise NotebookError(
                f"{cell.where} and {holder.where} are both named task {name!r}; "
                f"give one of them its own name, e.g. %%task {name}_2"
            )
        # No cell ids from this frontend: an edited cell and a second cell look alike.
        del self._task_keys[holder_key]
        self.last_note = (
            f"task {name!r} redefined by {cell.where} (this frontend sends no cell ids, so a cell "
            f"with new code and the same name replaces the task; if it is another cell, name it differently)"
        )

    def _rename(self, old: str, new: str) -> None:
        self._tasks = {(new if n == old else n): c for n, c in self._tasks.items()}
        self._task_keys = {k: (new if n == old else n) for k, n in self._task_keys.items()}

    def remove_task(self, name: str) -> None:
        """Remove a task from the flow."""
        if name not in self._tasks:
            raise NotebookError(f"no task {name!r}; tasks: {', '.join(self._tasks) or '(none)'}")
        del self._tasks[name]
        self._task_keys = {k: n for k, n in self._task_keys.items() if n != name}

    def set_order(self, names: Iterable[str]) -> None:
        """Put tasks in the given order (the document order); unknown names are ignored."""
        wanted = [n for n in names if n in self._tasks]
        rest = [n for n in self._tasks if n not in wanted]
        self._tasks = {n: self._tasks[n] for n in [*wanted, *rest]}

    def order_by_cells(self, cell_ids: Iterable[str]) -> None:
        """Put tasks in the document order the frontend sent (its cell ids, top to bottom).

        Tasks whose cell the list does not name (no cell id, or a cell since deleted)
        keep their order after the named ones.
        """
        position = {cell_id: i for i, cell_id in enumerate(cell_ids)}
        last = len(position)
        ordered = sorted(
            enumerate(self._tasks),
            key=lambda item: (position.get(self._tasks[item[1]].cell_id or "", last), item[0]),
        )
        self._tasks = {name: self._tasks[name] for _, name in ordered}

    def edges(self) -> set[tuple[str, str]]:
        """The (upstream, downstream) pairs between tasks that resolution gives now."""
        resolution = self.resolve()
        return {(up, name) for name in self._tasks for up in resolution.upstream(name)}

    @property
    def task_names(self) -> list[str]:
        """The tasks, in task order."""
        return list(self._tasks)

    def task_cell(self, name: str) -> Cell:
        """The cell of a task; ``NotebookError`` naming the tasks otherwise."""
        try:
            return self._tasks[name]
        except KeyError:
            raise NotebookError(f"no task {name!r}; tasks: {', '.join(self._tasks) or '(none)'}") from None

    @property
    def setup_cells(self) -> list[Cell]:
        """The ``%%setup`` cells."""
        return list(self._setup.values())

    @property
    def params_cells(self) -> list[Cell]:
        """The ``%%params`` cells."""
        return list(self._params.values())

    def setup_code(self) -> SetupCode:
        """The setup cells as one ``SetupCode``."""
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
        """Where each task's inputs come from (see the module docstring), hidden dependencies and in-place changes."""
        params = set(parameter_names if parameter_names is not None else self._param_names())
        setup_names = {n for c in self._setup.values() for n in c.analysis.defines}
        resolution = Resolution()
        latest: dict[str, str] = {}
        readers: dict[tuple[str, str], list[str]] = {}
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
            changes = self._changes(name, cell, inputs)
            if changes:
                resolution.changes[name] = changes
                # Readers of the value this task changes run before it (what they saw top to bottom).
                before = [r for n in changes for r in readers.get((n, inputs[n]), []) if r != name]
                if before:
                    resolution.ordering[name] = list(dict.fromkeys(before))
            for used, source in inputs.items():
                readers.setdefault((used, source), []).append(name)
            for defined in [*analysis.defines, *changes]:
                latest[defined] = name
        return resolution

    def _changes(self, name: str, cell: Cell, inputs: Mapping[str, str]) -> dict[str, str]:
        """The inputs (from other tasks) the task changes in place, and how nbflow knows."""
        analysis = cell.analysis
        known = [
            *((n, "declared") for n in cell.options.mutates),
            *((n, "item assignment") for n in analysis.writes_into),
            *((n, "detected") for n in sorted(self.detections.names(name, cell.source))),
            *((n, "method call") for n in analysis.mutations),
        ]
        changes: dict[str, str] = {}
        for var, how in known:
            if inputs.get(var, PARAM) not in (PARAM, SETUP) and var not in changes:
                if how in ("detected", "method call") and var in analysis.defines:
                    how = "item assignment"  # the cell assigns into it too: the analysis sees it
                changes[var] = how
        return changes

    def _check_handlers(self) -> None:
        """Every handler a cell names is a name a ``%%setup`` cell defines."""
        defined = [n for c in self._setup.values() for n in c.analysis.defines]
        check_defined(self.flow_handlers, defined, where=f"flow {self.name!r} (%flow on)")
        for cell in self._tasks.values():
            check_defined(cell.options.handlers, defined, where=cell.where)

    def _param_names(self) -> set[str]:
        return {n for c in self._params.values() for n in c.analysis.defines}

    def hidden_message(self, hidden: Mapping[str, list[str]]) -> str:
        """The error that names each hidden dependency and where it came from."""
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
        self._check_handlers()
        flow = Flow(
            self.name,
            schedule=self.schedule,
            state_handlers=handlers_for(self.flow_handlers, setup, owner=f"flow {self.name!r}"),
        )
        parameters = {name: Parameter(name, default=value) for name, value in defaults.items()}
        for p in parameters.values():
            flow.add_task(p)
        tasks: dict[str, Task] = {}
        for name, cell in self._tasks.items():
            changes = resolution.changes.get(name, {})
            task = cell_task(cell, name, setup=setup, parameter_names=parameters, changes=changes)
            if isinstance(task, CellTask):
                task.hidden = tuple(resolution.hidden.get(name, ()))
                task.undeclared_mutations = tuple(resolution.undeclared(name))
            task.state_handlers = tuple(handlers_for(cell.options.handlers, setup, owner=f"task {name!r}"))
            tasks[name] = flow.add_task(task)
        for name, inputs in resolution.inputs.items():
            for used, source in inputs.items():
                if source == PARAM:
                    flow.add_edge(parameters[used], tasks[name], key=used)
                elif source != SETUP:
                    flow.add_edge(tasks[source], tasks[name], key=used)
            for upstream in [*resolution.explicit.get(name, []), *resolution.ordering.get(name, [])]:
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
