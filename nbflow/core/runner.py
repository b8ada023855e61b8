"""FlowRunner: runs a flow's tasks in dependency order on an executor.

A task is submitted once all its upstream tasks have finished; the trigger
(``taskrun.trigger_decision``) decides whether it runs. The runner is the one
engine: the notebook, the CLI and the agent's flow subprocess all drive it.
"""

from __future__ import annotations

import functools
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nbflow.core import capture
from nbflow.core.context import (
    VALUES_KEY,
    _date_values,
    check_values,
    reset_context,
    set_context,
    task_logger,
)
from nbflow.core.drivers import driver_for
from nbflow.core.errors import NbflowError, ScheduleError
from nbflow.core.events import Event, EventStream
from nbflow.core.executors import Executor, ThreadExecutor, resolve_executor
from nbflow.core.plan import Plan, keeper
from nbflow.core.record import StateRecord, new_id, state_change
from nbflow.core.states import State, StateType
from nbflow.core.taskrun import Incoming, RunInfo, run_task
from nbflow.core.tasks import Task, parameter_values

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from nbflow.core.flows import Flow
    from nbflow.core.slots import SlotGate

S = StateType


class TaskStates(dict):  # type: ignore[type-arg]
    """Final task states of a flow run, keyed by ``Task``; a slug or name works too."""

    def __getitem__(self, key: Any) -> State:
        if isinstance(key, str):
            for task in self:
                if task.slug == key:
                    return super().__getitem__(task)
            matches = [t for t in self if t.name == key]
            if len(matches) == 1:
                return super().__getitem__(matches[0])
            known = ", ".join(t.slug or t.name for t in self)
            raise KeyError(f"no task {key!r} in this run; tasks: {known}")
        return super().__getitem__(key)

    def by_slug(self) -> dict[str, State]:
        """The same states keyed by task slug."""
        return {task.slug or task.name: state for task, state in self.items()}


def run_base_context(
    flow_name: str,
    flow_run_id: str,
    parameters: Mapping[str, Any],
    start: datetime | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context every task run of one flow run starts from (see ``nbflow.context``);
    ``values`` are the run's own (``-c key=value``)."""
    start = start or datetime.now(UTC)
    return {
        VALUES_KEY: dict(values or {}),
        "flow_name": flow_name,
        "flow_run_id": flow_run_id,
        "parameters": dict(parameters),
        "scheduled_start_time": start,
        "logger": task_logger(),
        **_date_values(start),
    }


class FlowRunner:
    """One run of a flow. ``run()`` blocks; ``cancel()`` may be called from any thread."""

    def __init__(
        self,
        flow: Flow,
        *,
        parameters: Mapping[str, Any] | None = None,
        executor: str | Executor | None = "local",
        cache: bool = True,
        targets: Iterable[Task | str] | None = None,
        initial_states: Mapping[Task, State] | None = None,
        stream: EventStream | None = None,
        echo: bool = True,
        flow_run_id: str | None = None,
        scheduled_start_time: datetime | None = None,
        cache_root: str | None = None,
        execution: int = 0,
        keep: str | Iterable[Task] | Callable[[Task], bool] = "all",
        context: Mapping[str, Any] | None = None,
        gate: SlotGate | None = None,
        results: str | None = None,
    ) -> None:
        self.flow = flow
        #: where tagged tasks get concurrency slots (the agent's flow process sets one)
        self.gate = gate
        #: the run's own ``nbflow.context`` values (``-c key=value``), checked
        self.context = check_values(dict(context) if context is not None else None)
        self.results = results  # a result store's URL: every task run's result is written there
        order = flow.sorted_tasks()  # raises CycleError before anything runs
        self.parameters = parameter_values(flow.parameters(), parameters)
        self.requested: set[Task] = set()
        if targets is not None:
            chosen = [flow.get_task(t) if isinstance(t, str) else t for t in targets]
            needed = flow.ancestors(chosen)
            order = [t for t in order if t in needed]
            self.requested = set(chosen)  # asked for by name: a manual_only trigger lets them run
        self.order = order
        self.executor = resolve_executor(executor)
        self.cache = cache
        self.cache_root = cache_root
        self.initial_states = {t: s for t, s in (initial_states or {}).items() if s.is_finished()}
        self.stream = stream if stream is not None else EventStream()
        self.echo = echo
        self.flow_run_id = flow_run_id or new_id()
        self.scheduled_start_time = scheduled_start_time
        self.execution = execution
        self.cancel_event = threading.Event()
        self.cancel_reason = ""
        self.states: dict[Task, State] = {}
        self.state = State(S.PENDING)
        self.task_run_ids: dict[Task, str] = {}
        self.released: set[Task] = set()  # tasks whose results went once nothing read them
        # Which results outlive their last reader: "all" for Flow.run() (the caller reads them).
        self.plan = Plan(flow, order, keeper(keep, flow, order))

    @property
    def task_count(self) -> int:
        """Tasks this run will run (parameters are its inputs, not tasks)."""
        return sum(1 for t in self.order if t.kind != "parameter")

    # -- control -------------------------------------------------------------

    def cancel(self, reason: str = "cancelled by user") -> None:
        """Stop starting tasks (from any thread); running ones are asked to stop."""
        self.cancel_reason = reason
        self.cancel_event.set()

    def _set_flow_state(self, new: State) -> State:
        record = state_change(self.flow_run_id, None, None, self.state.type, new, execution=self.execution)
        self.state = new
        self.stream.emit(record)
        return new

    def _set_task_state(self, task: Task, previous: StateType, new: State) -> State:
        """A task state the runner decides itself (trigger, cancellation, executor failure);
        a finished one becomes the task's final state of this run."""
        if new.is_finished():
            self.states[task] = new
        self.stream.emit(
            state_change(
                self.flow_run_id,
                self.task_run_ids.get(task),
                task.slug,
                previous,
                new,
                execution=self.execution,
            )
        )
        return new

    def wait_until(self, when: datetime) -> bool:
        """Mark the run Scheduled and wait for ``when``; False if cancelled meanwhile."""
        self._set_flow_state(
            State(S.SCHEDULED, f"scheduled for {when.isoformat()}", start_time=when.timestamp())
        )
        self.stream.flush()
        while True:
            remaining = when.timestamp() - time.time()
            if remaining <= 0:
                return True
            # Short waits keep the wait interruptible by the kernel's interrupt.
            if self.cancel_event.wait(min(remaining, 0.5)):
                return False

    # -- running -------------------------------------------------------------

    def _run_info(self, parameters: Mapping[str, Any]) -> RunInfo:
        base_context = run_base_context(
            self.flow.name, self.flow_run_id, parameters, self.scheduled_start_time, self.context
        )
        return RunInfo(
            flow_name=self.flow.name,
            flow_run_id=self.flow_run_id,
            parameters=parameters,
            base_context=base_context,
            cache_read=self.cache,
            cache_root=self.cache_root,
            echo=self.echo,
            execution=self.execution,
            cancel_event=self.cancel_event,
            gate=self.gate,
            map_workers=self.executor.workers() if isinstance(self.executor, ThreadExecutor) else 1,
            results=self.results,
        )

    def run_task_now(
        self, task: Task, inputs: Mapping[str, Any], *, parameters: Mapping[str, Any] | None = None
    ) -> State:
        """Run one task now with the given inputs, without flow-run states: a notebook cell
        run against the kernel's values. Its trigger is not asked (it was asked for)."""
        info = self._run_info(dict(parameters or self.parameters))
        self.task_run_ids[task] = run_id = new_id()
        unsubscribe = self._attach_handlers([task])
        capture.install()
        try:
            state = run_task(task, run_id, [], inputs, info, self.stream.emitter(), check_trigger=False)
        finally:
            capture.uninstall()
            self.stream.flush()
            unsubscribe()
        self.states[task] = state
        return state

    def run(self) -> State:
        """Run the flow to its final state (``state.result`` maps each task to its own)."""
        info = self._run_info(self.parameters)
        unsubscribe = self._attach_handlers()
        capture.install()
        try:
            if self.cancel_event.is_set():
                return self._finish(cancelled=True)
            self._set_flow_state(
                State(S.RUNNING, f"running {self.task_count} tasks on {self.executor.describe()}")
            )
            interrupted = False
            try:
                with self.executor:
                    driver_for(self.executor)(self, info)
            except KeyboardInterrupt:
                interrupted = True
                self.cancel("interrupted")
            if self.cancel_event.is_set() and not self.cancel_reason:
                self.cancel_reason = "interrupted"  # Ctrl-C inside a task on this thread
            return self._finish(cancelled=self.cancel_event.is_set() or interrupted)
        finally:
            capture.uninstall()
            self.stream.flush()
            unsubscribe()

    def _incoming(self, task: Task) -> list[Incoming]:
        states = self.states
        return [(e.key, e.upstream.slug or "", states[e.upstream]) for e in self.flow.upstream_edges(task)]

    def reuse(self, task: Task) -> State:
        """A finished state of an earlier run stands in for running the task again: it
        becomes ``Cached`` (the result comes from that run), reached from Pending like any."""
        earlier = self.initial_states[task]
        self.task_run_ids[task] = new_id()
        state = earlier
        if earlier.type not in (S.CACHED, S.SKIPPED):
            state = State(
                S.CACHED,
                f"reused: {earlier.type.value} in an earlier run",
                result=earlier.result,
                result_ref=earlier.result_ref,
                attempt=earlier.attempt,
                children=earlier.children,
            )
        return self._set_task_state(task, S.PENDING, state)

    def cancelled(self, task: Task, previous: StateType) -> State:
        """``task`` ends Cancelled without having run (the run was cancelled first)."""
        reason = self.cancel_reason or "the flow run was cancelled before this task started"
        return self._set_task_state(task, previous, State(S.CANCELLED, reason))

    def start(self, task: Task) -> tuple[str, dict[str, Any] | None]:
        """A new task run of ``task``: its id and its constants."""
        self.task_run_ids[task] = run_id = new_id()
        return run_id, self.flow.constants.get(task)

    def _call(self, task: Task, info: RunInfo) -> tuple[Any, ...]:
        """``run_task``'s positional arguments for a task that starts now."""
        run_id, constants = self.start(task)
        return (task, run_id, self._incoming(task), constants, info, self.stream.emitter())

    def run_here(self, task: Task, info: RunInfo) -> State:
        """Run ``task`` in this thread (the sequential and threads drivers)."""
        return run_task(*self._call(task, info), requested=task in self.requested)

    def submit(self, task: Task, info: RunInfo) -> Any:
        """Hand one task run to the executor (``executor.submit``); its handle."""
        return self.executor.submit(
            functools.partial(run_task, requested=task in self.requested), *self._call(task, info)
        )

    def finished(self, task: Task, state: State) -> list[Task]:
        """Record ``task``'s final state, and let go of every result nothing needs any more;
        the tasks whose results went."""
        self.states[task] = state
        released = self.plan.done(task)
        for done in released:
            kept = self.states.get(done)
            if kept is not None and kept.result is not None and not kept.is_failed():
                self.states[done] = kept.without_result(done.residue(kept.result))
                self.released.add(done)
        return released

    def executor_failed(self, task: Task, exc: BaseException, *, previous: StateType) -> State:
        """The executor itself failed a task run (a worker died, pickling): it ends Failed."""
        message = f"{self.executor.name} executor error: {type(exc).__name__}: {exc}"
        return self._set_task_state(task, previous, State(S.FAILED, message, result=exc))

    def _finish(self, *, cancelled: bool) -> State:
        states = TaskStates()
        not_run = 0
        for task in self.order:
            state = self.states.get(task)
            if state is None:
                not_run += 1
                state = self.cancelled(task, S.PENDING)
            states[task] = state
        self.states = dict(states)
        return self._set_flow_state(self._final_state(states, cancelled=cancelled, not_run=not_run))

    def _final_state(self, states: TaskStates, *, cancelled: bool, not_run: int) -> State:
        """The flow run's final state; its message counts tasks (parameters are inputs, not tasks)."""
        tasks = [s for t, s in states.items() if t.kind != "parameter"]
        failed = [t for t, s in states.items() if s.is_failed()]
        if cancelled:
            if self.state.type is S.RUNNING:
                self._set_flow_state(State(S.CANCELLING, self.cancel_reason or "cancelling"))
            return State(
                S.CANCELLED,
                f"{self.cancel_reason or 'cancelled'}: {not_run} of {len(tasks)} tasks did not run",
                result=states,
            )
        if failed:
            names = ", ".join(f"{t.slug} ({states[t].type.value})" for t in failed[:10])
            more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
            return State(
                S.FAILED,
                f"{len(failed)} of {counted(len(tasks), 'task')} failed: {names}{more}",
                result=states,
            )
        counts: dict[str, int] = {}
        for s in tasks:
            counts[s.type.value] = counts.get(s.type.value, 0) + 1
        summary = ", ".join(f"{n} {name.lower()}" for name, n in counts.items())
        every = "its one task" if len(tasks) == 1 else f"all {len(tasks)} tasks"
        return State(S.SUCCESS, f"{every} finished: {summary}", result=states)

    def _attach_handlers(self, tasks: Iterable[Task] | None = None) -> Any:
        """State and log handlers are observers of the event stream, like every other. They are
        called with ``nbflow.context`` set to this run (a handler may read its run's values)."""
        flow = self.flow
        by_slug = {t.slug: t for t in (self.order if tasks is None else tasks) if t.state_handlers}
        if not (by_slug or flow.state_handlers or flow.log_handlers):
            return lambda: None
        last: dict[str | None, State | None] = {}
        run_context = run_base_context(
            flow.name, self.flow_run_id, self.parameters, self.scheduled_start_time, self.context
        )

        def observe(batch: list[Event]) -> None:
            token = set_context(run_context)
            try:
                for event in batch:
                    if not isinstance(event, StateRecord):
                        for log_handler in flow.log_handlers:
                            log_handler(event)
                        continue
                    new = event.to_state()
                    old = last.get(event.task)
                    last[event.task] = new
                    if event.task is None:
                        for flow_handler in flow.state_handlers:
                            flow_handler(flow, old, new)  # type: ignore[arg-type]
                    elif event.task in by_slug:
                        task = by_slug[event.task]
                        for task_handler in task.state_handlers:
                            task_handler(task, old, new)
            finally:
                reset_context(token)

        return self.stream.subscribe(observe)


def run_on_schedule_loop(
    flow: Flow,
    *,
    runs: int | None = 1,
    execute: Callable[[FlowRunner], State] | None = None,
    **runner_kwargs: Any,
) -> State:
    """The local convenience scheduler: wait for each scheduled time, then run
    (``execute`` runs each prepared runner; default ``runner.run()``)."""
    schedule = flow.schedule
    if schedule is None:
        raise NbflowError(f"flow {flow.name!r} has no schedule; set one or pass run_on_schedule=False")
    given = dict(runner_kwargs.pop("parameters", None) or {})
    last: State | None = None
    done = 0
    after: datetime | None = None
    while runs is None or done < runs:
        upcoming = schedule.next(1, after=after)
        if not upcoming:
            if last is None:
                raise ScheduleError(
                    f"the schedule of {flow.name!r} ({schedule.describe()}) has no future times"
                )
            return last
        when = upcoming[0]
        params = {**schedule.parameter_defaults, **given}
        runner = FlowRunner(flow, parameters=params, scheduled_start_time=when, **runner_kwargs)
        if not runner.wait_until(when):
            return runner._finish(cancelled=True)
        last = execute(runner) if execute is not None else runner.run()
        after = when
        done += 1
    assert last is not None
    return last


def counted(n: int, noun: str) -> str:
    """``n`` of a noun, said in English ("1 task", "3 tasks"): run summaries use it."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
