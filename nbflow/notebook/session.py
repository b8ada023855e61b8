"""One kernel's nbflow session: the notebook flow, its event stream, runs and widget.

The magics parse arguments and print; everything they do happens here, so
it can be driven (and tested) without IPython's argument syntax.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.core import capture
from nbflow.core.errors import NotebookError, RunError
from nbflow.core.events import EventStream
from nbflow.core.executors import DaskExecutor, Executor, resolve_executor
from nbflow.core.runner import FlowRunner, new_id, run_base_context, run_on_schedule_loop
from nbflow.core.taskrun import RunInfo, run_task
from nbflow.core.tasks import Parameter, Task
from nbflow.notebook.cellflow import NotebookFlow, Resolution
from nbflow.notebook.cells import Cell, TaskOptions
from nbflow.notebook.celltasks import EMPTY_SETUP, CellTask, ShellTask
from nbflow.notebook.history import RunHistory

if TYPE_CHECKING:
    from nbflow.core.flows import Flow
    from nbflow.core.states import State


def default_flow_name() -> str:
    # Jupyter Server 2 tells the kernel which notebook it serves.
    session = os.environ.get("JPY_SESSION_NAME")
    return Path(session).stem if session else "notebook"


class NotebookSession:
    def __init__(self, shell: Any = None) -> None:
        self.shell = shell
        self.flow = NotebookFlow(default_flow_name())
        self.stream = EventStream()
        self.history = RunHistory()
        self.stream.subscribe(self.history.observe)
        self.runner: FlowRunner | None = None
        self.run_thread: threading.Thread | None = None
        self.last_state: State | None = None
        # slug -> (code identity, final state) of the latest run of each task, for re-runs
        self.last_states: dict[str, tuple[str, State]] = {}
        self.last_resolution: Resolution | None = None
        self.current_cell_id: str | None = None
        self.last_server_runs: list[str] = []
        self.watches: list[Any] = []  # widgets following server runs
        self._widget: Any = None
        self._lock = threading.Lock()

    @property
    def user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    # -- defining cells -------------------------------------------------------

    def where(self) -> str:
        count = getattr(self.shell, "execution_count", None)
        return f"cell In[{count}]" if count is not None else "the cell"

    def define(self, kind: str, body: str, options: TaskOptions | None = None) -> str | None:
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
        self.refresh_widget()
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
        cell = self.flow.task_cell(name)
        task: Task = ShellTask(cell, name) if cell.options.shell else CellTask(cell, name, setup=EMPTY_SETUP)
        task.slug = name
        ns = self.user_ns
        inputs = {n: ns[n] for n in [*cell.analysis.uses, *cell.analysis.weak_uses] if n in ns}
        params = {n: ns[n] for c in self.flow.params_cells for n in c.analysis.defines if n in ns}
        run_id = new_id()
        info = RunInfo(
            flow_name=self.flow.name,
            flow_run_id=run_id,
            parameters=params,
            base_context=run_base_context(self.flow.name, run_id, params),
            echo=True,
            cancel_event=threading.Event(),
        )
        capture.install()
        try:
            # Running the cell asks for this task: there are no upstream states to trigger on.
            state = run_task(task, new_id(), [], inputs, info, self.stream.emitter(), check_trigger=False)
        finally:
            capture.uninstall()
            self.stream.flush()
        if state.is_successful() and isinstance(state.result, Mapping):
            self.user_ns.update(state.result)
        self.last_states[name] = (task.cache_source(), state)
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
        executor: str | Executor = "threads",
        cache: bool = True,
        targets: Iterable[str] | None = None,
        rerun_failed: bool = False,
        background: bool = False,
    ) -> tuple[FlowRunner, State | None]:
        with self._lock:
            if self.runner is not None:
                raise RunError("a run is already in progress: wait for it, or stop it with %flow cancel")
            resolved = resolve_executor(executor)
            flow, _ = self.build(executor=resolved)
            initial = self.reusable_states(flow, parameters) if rerun_failed else None
            runner = FlowRunner(
                flow,
                parameters=parameters,
                executor=resolved,
                cache=cache,
                targets=targets,
                initial_states=initial,
                stream=self.stream,
                echo=False,
            )
            self.runner = runner
        self.refresh_widget(flow)
        if background:
            self.run_thread = threading.Thread(
                target=self._run, args=(runner,), name="nbflow-run", daemon=True
            )
            self.run_thread.start()
            return runner, None
        return runner, self._run(runner)

    def run_on_schedule(
        self, parameters: Mapping[str, Any] | None, *, executor: Executor, cache: bool, runs: int | None
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
        )

    def _run(self, runner: FlowRunner) -> State:
        with self._lock:
            self.runner = runner
        try:
            state = runner.run()
        finally:
            with self._lock:
                self.runner = None
        self._write_back(runner, state)
        self.last_state = state
        if self._widget is not None:
            self._widget.flush()
        return state

    def _write_back(self, runner: FlowRunner, state: State) -> None:
        """Outputs into the kernel, in task order, as if the cells had run one by one."""
        ns = self.user_ns
        results = state.result or {}
        for task in runner.order:
            task_state = results.get(task)
            if task_state is None:
                continue
            self.last_states[task.slug or task.name] = (task.cache_source(), task_state)
            if not task_state.is_successful():
                continue
            if isinstance(task, Parameter):
                ns[task.name] = task_state.result
            elif isinstance(task_state.result, Mapping):
                ns.update(task_state.result)

    def reusable_states(self, flow: Flow, parameters: Mapping[str, Any] | None) -> dict[Task, State]:
        """States of the last run to keep when re-running failed tasks: unchanged successful
        tasks whose upstream is kept too (so the failed ones and everything downstream run)."""
        given = dict(parameters or {})
        keep: dict[Task, State] = {}
        for task in flow.sorted_tasks():
            previous = self.last_states.get(task.slug or task.name)
            if previous is None or not previous[1].is_successful() or previous[0] != task.cache_source():
                continue
            if isinstance(task, Parameter):
                value = given.get(task.name, task.default)
                if previous[1].result != value:
                    continue
            if all(up in keep for up in flow.upstream_tasks(task)):
                keep[task] = previous[1]
        return keep

    def cancel(self) -> bool:
        runner = self.runner
        if runner is None:
            return False
        runner.cancel("cancelled from the notebook")
        return True

    def wait(self, timeout: float | None = None) -> State | None:
        thread = self.run_thread
        if thread is not None:
            thread.join(timeout)
        return self.last_state

    def reset(self) -> None:
        self.cancel()
        self.flow = NotebookFlow(self.flow.name)
        self.history.reset()
        self.last_states.clear()
        self.last_state = None
        self.refresh_widget()

    def dask_executor(self, address: str | None) -> DaskExecutor:
        return DaskExecutor(address=address) if address else DaskExecutor()

    # -- widget -------------------------------------------------------------------

    def widget(self) -> Any:
        if self._widget is None:
            from nbflow.notebook.widget import FlowWidget

            self._widget = FlowWidget(on_action=self._on_widget_action, detail_provider=self.task_detail)
            self.stream.subscribe(self._widget.observe)
        self.refresh_widget()
        return self._widget

    def refresh_widget(self, flow: Flow | None = None) -> None:
        if self._widget is None:
            return
        try:
            structure = (flow or self.build()[0]).structure()
        except Exception:
            return  # an incomplete notebook (e.g. a bad --upstream) keeps the last good graph
        self._widget.set_structure(structure)

    def task_detail(self, slug: str) -> dict[str, Any]:
        detail = self.history.detail(slug)
        resolution = self.last_resolution or self.flow.resolve()
        inputs = resolution.inputs.get(slug, {})
        try:
            cell = self.flow.task_cell(slug)
            outputs = list(cell.analysis.defines)
        except Exception:
            outputs = []
        detail["inputs"] = [f"{name} ← {source}" for name, source in inputs.items()]
        detail["outputs"] = outputs
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
