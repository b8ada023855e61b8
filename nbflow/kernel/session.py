"""One kernel's nbflow session: the notebook flow, its event stream, runs and widget.

The magics parse arguments and print; everything they do happens here, so
it can be driven (and tested) without IPython's argument syntax.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.cells.cellflow import NotebookFlow, Resolution, cell_task
from nbflow.cells.cells import Cell, TaskOptions
from nbflow.cells.celltasks import EMPTY_SETUP
from nbflow.cells.guard import refuse_parallel
from nbflow.cells.handlers import MappingSource, handlers_for
from nbflow.core.errors import NbflowError, NotebookError, RunError
from nbflow.core.events import EventStream
from nbflow.core.executors import Executor, resolve_executor
from nbflow.core.flows import Flow
from nbflow.core.results import checked_url
from nbflow.core.runner import FlowRunner, run_on_schedule_loop
from nbflow.core.runview import RunView
from nbflow.core.tasks import Parameter, Task
from nbflow.kernel.keep import NamespaceKeeper

if TYPE_CHECKING:
    from nbflow.core.states import State
    from nbflow.kernel.cellcomm import CellComm


MAX_DETAIL_FIGURES = 8  # a detail message stays small enough for the comm


def default_flow_name() -> str:
    # Jupyter Server 2 tells the kernel which notebook it serves.
    """The notebook's file name when Jupyter says it, else ``notebook``."""
    session = os.environ.get("JPY_SESSION_NAME")
    return Path(session).stem if session else "notebook"


def prompt_number(shell: Any) -> int | None:
    """The execution count of the cell running now, as its prompt shows it.

    IPython stores a cell's input under its number before running it, but
    increments ``execution_count`` before the run in IPython 9 and after it in
    IPython 8: the input history's last number is right in both.
    """
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if history:
        return len(history) - 1
    return getattr(shell, "execution_count", None)


class NotebookSession:
    """One kernel's flow, runs and widget; the magics drive it."""

    def __init__(self, shell: Any = None) -> None:
        self.shell = shell
        self.flow = NotebookFlow(default_flow_name())
        self.stream = EventStream()
        # The one fold of this kernel's runs: %flow status/logs and the widget read it.
        self.view = RunView()
        self.stream.subscribe(self.view.observe)
        self.runner: FlowRunner | None = None
        self.run_thread: threading.Thread | None = None
        self.last_state: State | None = None
        # slug -> (code identity, final state) of the latest run of each task, for re-runs
        self.last_states: dict[str, tuple[str, State]] = {}
        # Tasks of the last run whose outputs went once later cells rebound their names:
        # their states stand, but they cannot stand in for running them again.
        self.released: set[str] = set()
        self.last_resolution: Resolution | None = None
        self.current_cell_id: str | None = None
        # task -> inputs the guard found it changing in place in the last run (%flow run prints them)
        self.new_mutations: dict[str, list[str]] = {}
        self.watches: list[Any] = []  # widgets following server runs
        # slug -> the cell source its last recorded run ran (a badge says "stale" when it differs)
        self.ran_sources: dict[str, str] = {}
        self.cell_comm: CellComm | None = None  # the JupyterLab extension's comm, when there is one
        self._widget: Any = None
        self._lock = threading.Lock()

    @property
    def user_ns(self) -> dict[str, Any]:
        """The kernel's user namespace."""
        return self.shell.user_ns if self.shell is not None else {}

    # -- defining cells -------------------------------------------------------

    def where(self) -> str:
        """How messages name the cell being run, by the prompt the user sees (``cell In[7]``)."""
        count = prompt_number(self.shell)
        return f"cell In[{count}]" if count is not None else "the cell"

    def define(self, kind: str, body: str, options: TaskOptions | None = None) -> str | None:
        """Add a cell of ``kind`` to the flow; the task name for a task cell."""
        cell = Cell(kind, body, options or TaskOptions(), where=self.where(), cell_id=self.current_cell_id)  # type: ignore[arg-type]
        if cell.options.upstream:
            # In the kernel an --upstream must name a task defined already (in a headless
            # run the whole document is read first, so forward references are fine there).
            known = set(self.flow.task_names)
            missing = [u for u in cell.options.upstream if u not in known]
            if missing:
                raise NotebookError(
                    f"{cell.where}: --upstream names no task {missing[0]!r}; "
                    f"tasks: {', '.join(self.flow.task_names) or '(none yet)'}"
                )
        name = self.flow.add(cell)
        if self.flow.last_note:
            print(f"nbflow: {self.flow.last_note}", file=sys.stderr)
        self.refresh_widget()
        self.cells_changed()
        return name

    def note_plain_cell(self, source: str, execution_count: int | None) -> None:
        """Remember names plain cells define, to say where a hidden dependency came from."""
        where = f"cell In[{execution_count}]" if execution_count is not None else "a plain cell"
        try:
            self.flow.add(Cell("code", source, where=where))
        except Exception:
            return  # a cell with a syntax error defines nothing we can trust

    # -- one task, now, against the kernel's values --------------------------------------

    def run_task_now(self, name: str) -> State:
        """Run one task cell now against the kernel's values; its outputs go into the kernel."""
        cell = self.flow.task_cell(name)
        task = cell_task(cell, name, setup=EMPTY_SETUP)
        task.slug = name
        ns = self.user_ns
        # Its handlers are the kernel's functions: %%setup ran in the kernel's namespace.
        task.state_handlers = tuple(
            handlers_for(cell.options.handlers, MappingSource(ns), owner=f"task {name!r}")
        )
        inputs = {n: ns[n] for n in [*cell.analysis.uses, *cell.analysis.weak_uses] if n in ns}
        params = {n: ns[n] for c in self.flow.params_cells for n in c.analysis.defines if n in ns}
        runner = FlowRunner(Flow(self.flow.name), stream=self.stream, echo=True)
        state = runner.run_task_now(task, inputs, parameters=params)
        if state.is_successful() and isinstance(state.result, Mapping):
            self.user_ns.update(state.result)
        self.last_states[name] = (task.cache_source(), state)
        self.ran_sources[name] = cell.source
        return state

    # -- flow runs -----------------------------------------------------------------

    def build(self, *, executor: Executor | None = None) -> tuple[Flow, Resolution]:
        """The engine flow; hidden dependencies come from the kernel, except on Dask."""
        remote = executor is not None and executor.remote
        flow, resolution = self.flow.build(
            hidden_values=None if remote else self.user_ns, allow_hidden=not remote
        )
        self.last_resolution = resolution
        return flow, resolution

    def start_run(
        self,
        parameters: Mapping[str, Any] | None = None,
        *,
        executor: str | Executor = "local",
        cache: bool = True,
        targets: Iterable[str] | None = None,
        rerun_failed: bool = False,
        rerun_from: str | None = None,
        background: bool = False,
        context: Mapping[str, Any] | None = None,
        on_start: Callable[[], None] | None = None,
        results: str | None = None,
    ) -> tuple[FlowRunner, State | None]:
        """Run the flow (in the background if asked); the runner and, if it ran, its state.

        ``rerun_from`` runs that task and everything downstream again, reusing the last
        run's states of the rest (``rerun_failed`` reuses every unchanged success).
        ``on_start`` is called once the run is accepted (flow built, parameters checked),
        before it starts: ``%flow run`` shows its widget there, so a refused run shows none.
        ``results``: a result store's URL; every task run's result is written there.
        """
        with self._lock:
            if self.runner is not None:
                raise RunError("a run is already in progress: wait for it, or stop it with %flow cancel")
            resolved = resolve_executor(executor)
            flow, _ = self.build(executor=resolved)
            refuse_parallel(flow, resolved)
            initial = None
            if rerun_failed or rerun_from is not None:
                again = self._task_and_downstream(flow, rerun_from) if rerun_from is not None else set()
                initial = self.reusable_states(flow, parameters, exclude=again)
                if again and targets is None:
                    targets = [t.slug or t.name for t in again]  # only those, on the rest's states
            runner = FlowRunner(
                flow,
                parameters=parameters,
                executor=resolved,
                cache=cache,
                targets=targets,
                initial_states=initial,
                stream=self.stream,
                echo=False,
                context=context,
                results=checked_url(results) if results else None,
            )
            self.runner = runner
        self.refresh_widget(flow)
        if on_start is not None:
            on_start()
        if background:
            self.run_thread = threading.Thread(
                target=self._run, args=(runner,), name="nbflow-run", daemon=True
            )
            self.run_thread.start()
            return runner, None
        return runner, self._run(runner)

    def run_on_schedule(
        self,
        parameters: Mapping[str, Any] | None,
        *,
        executor: Executor,
        cache: bool,
        runs: int | None,
        context: Mapping[str, Any] | None = None,
    ) -> State:
        """The local convenience scheduler, with outputs written back after each run."""
        flow, _ = self.build(executor=executor)
        return run_on_schedule_loop(
            flow,
            runs=runs,
            parameters=parameters,
            executor=executor,
            cache=cache,
            stream=self.stream,
            echo=False,
            execute=self._run,
            context=context,
        )

    def _run(self, runner: FlowRunner) -> State:
        with self._lock:
            self.runner = runner
        runner.plan.keep = NamespaceKeeper(runner.order, runner.states)
        try:
            state = runner.run()
        finally:
            with self._lock:
                self.runner = None
        self._write_back(runner, state)
        self.last_state = state
        if self._widget is not None:
            self._widget.flush()
        if self.cell_comm is not None:
            self.cell_comm.flush()
        return state

    def note_mutations(self, name: str, state: State) -> list[str]:
        """Remember inputs task ``name`` changed in place (the guard's finding); the new ones."""
        mutated = list(getattr(state.result, "mutated", ()) if state.is_successful() else ())
        if not mutated or name not in self.flow.task_names:
            return []
        self.new_mutations[name] = mutated
        return self.flow.detections.record(name, self.flow.task_cell(name).source, mutated)

    def _write_back(self, runner: FlowRunner, state: State) -> None:
        """Outputs into the kernel, in task order, as if the cells had run one by one."""
        ns = self.user_ns
        results = state.result or {}
        for task in runner.order:
            task_state = results.get(task)
            if task_state is None:
                continue
            slug = task.slug or task.name
            self.last_states[slug] = (task.cache_source(), task_state)
            if slug in self.flow.task_names:
                self.ran_sources[slug] = self.flow.task_cell(slug).source
            if task in runner.released:
                self.released.add(slug)
            else:
                self.released.discard(slug)
            if not task_state.is_successful():
                continue
            self.note_mutations(task.slug or task.name, task_state)
            if isinstance(task, Parameter):
                ns[task.name] = task_state.result
            elif isinstance(task_state.result, Mapping):
                ns.update(task_state.result)

    @staticmethod
    def _task_and_downstream(flow: Flow, slug: str) -> set[Task]:
        task = next((t for t in flow.sorted_tasks() if (t.slug or t.name) == slug), None)
        if task is None:
            raise NotebookError(f"no task {slug!r} to re-run from")
        return {task, *flow.descendants([task])}

    def reusable_states(
        self, flow: Flow, parameters: Mapping[str, Any] | None, *, exclude: set[Task] | None = None
    ) -> dict[Task, State]:
        """States of the last run to keep when re-running failed tasks: unchanged successful
        tasks whose upstream is kept too (so the failed ones and everything downstream run),
        except the ``exclude`` tasks, which run again."""
        given = dict(parameters or {})
        keep: dict[Task, State] = {}
        for task in flow.sorted_tasks():
            if exclude and task in exclude:
                continue
            previous = self.last_states.get(task.slug or task.name)
            if previous is None or not previous[1].is_successful() or previous[0] != task.cache_source():
                continue
            if isinstance(task, Parameter):
                value = given.get(task.name, task.default)
                if previous[1].result != value:
                    continue
            if all(up in keep for up in flow.upstream_tasks(task)):
                keep[task] = previous[1]
        return self._without_missing_inputs(flow, keep)

    def _without_missing_inputs(self, flow: Flow, keep: dict[Task, State]) -> dict[Task, State]:
        """A task whose outputs went can stand in only when no task that runs reads them; when
        one does, it runs again, and so does everything after it."""
        while True:
            missing = next(
                (
                    t
                    for t in keep
                    if (t.slug or t.name) in self.released
                    and any(d not in keep for d in flow.downstream_tasks(t))
                ),
                None,
            )
            if missing is None:
                return keep
            for task in [missing, *flow.descendants([missing])]:
                keep.pop(task, None)

    def cancel(self) -> bool:
        """Cancel the run in progress; False if none."""
        runner = self.runner
        if runner is None:
            return False
        runner.cancel("cancelled from the notebook")
        return True

    def wait(self, timeout: float | None = None) -> State | None:
        """Wait for a background run; its final state."""
        thread = self.run_thread
        if thread is not None:
            thread.join(timeout)
        return self.last_state

    def reset(self) -> None:
        """Forget the flow's tasks and runs."""
        self.cancel()
        self.flow = NotebookFlow(self.flow.name)
        self.view.reset()
        self.last_states.clear()
        self.ran_sources.clear()
        self.released.clear()
        self.last_state = None
        self.refresh_widget()
        self.cells_changed()

    # -- the JupyterLab extension's cells -----------------------------------------------

    def attach_cell_comm(self, cell_comm: CellComm) -> None:
        """Send task cells' states to the frontend over ``cell_comm`` from now on."""
        self.cell_comm = cell_comm
        self.stream.subscribe(cell_comm.observe)
        cell_comm.changed()

    def cells_changed(self) -> None:
        """Cells were defined or moved: the frontend's badges follow."""
        if self.cell_comm is not None:
            self.cell_comm.changed()

    def order_by_cells(self, cell_ids: list[str]) -> str | None:
        """Use the frontend's document order as the task order; what changed, if edges did."""
        try:
            before = self.flow.edges()
        except NbflowError:
            before = set()
        old_order = self.flow.task_names
        self.flow.order_by_cells(cell_ids)
        if self.flow.task_names == old_order:
            return None
        self.refresh_widget()
        try:
            after = self.flow.edges()
        except NbflowError as exc:
            return f"nbflow: the new cell order breaks the flow: {exc}"
        if after == before:
            return None
        added = ", ".join(f"{u} → {d}" for u, d in sorted(after - before)) or "none"
        removed = ", ".join(f"{u} → {d}" for u, d in sorted(before - after)) or "none"
        return f"nbflow: the cells' new order changes the flow's edges. New: {added}. Gone: {removed}."

    def cell_action(self, action: str, task: str) -> None:
        """A task cell's toolbar action: ``run_to`` runs the flow up to ``task``, ``rerun_from``
        runs it and everything downstream again (reusing the rest of the last run)."""
        self.flow.task_cell(task)  # an unknown task is a NotebookError naming the tasks
        if action == "run_to":
            self.start_run(targets=[task], background=True)
        elif action == "rerun_from":
            self.start_run(rerun_from=task, background=True)
        else:
            raise NotebookError(f"unknown cell action {action!r}")

    # -- widget -------------------------------------------------------------------

    def widget(self) -> Any:
        """The session's widget (made on first use), showing the current flow."""
        if self._widget is None:
            from nbflow.kernel.widget import FlowWidget

            self._widget = FlowWidget(
                on_action=self._on_widget_action, detail_provider=self.task_detail, view=self.view
            )
            self.stream.subscribe(self._widget.observe)
        self.refresh_widget()
        return self._widget

    def refresh_widget(self, flow: Flow | None = None) -> None:
        """Redraw the widget's graph (a broken notebook keeps the last good one)."""
        if self._widget is None:
            return
        try:
            structure = (flow or self.build()[0]).structure()
        except Exception:
            return  # an incomplete notebook (e.g. a bad --upstream) keeps the last good graph
        self._widget.set_structure(structure)

    def task_detail(self, slug: str) -> dict[str, Any]:
        """The widget's detail of a task, with the inputs and outputs the analysis found."""
        detail: dict[str, Any] = {}
        resolution = self.last_resolution or self.flow.resolve()
        inputs = resolution.inputs.get(slug, {})
        try:
            cell = self.flow.task_cell(slug)
            outputs = list(cell.analysis.defines)
        except Exception:
            outputs = []
        detail["inputs"] = [f"{name} ← {source}" for name, source in inputs.items()]
        detail["outputs"] = outputs
        last = self.last_states.get(slug)
        figures = getattr(last[1].result, "figures", None) if last is not None else None
        # The task's figures as base64 PNG, drawn by the widget's detail panel.
        detail["figures"] = [base64.b64encode(png).decode() for png in (figures or [])[:MAX_DETAIL_FIGURES]]
        return detail

    def _on_widget_action(self, action: str, content: Mapping[str, Any]) -> None:
        try:
            if action == "run":
                self.start_run(background=True)
            elif action == "cancel":
                self.cancel()
            elif action == "rerun_failed":
                self.start_run(rerun_failed=True, background=True)
            elif action == "run_to":
                self.start_run(targets=[str(content.get("slug"))], background=True)
        except Exception as exc:
            if self._widget is not None:
                self._widget.notify_error(str(exc))
