"""A run as its observers see it: records folded into each task's latest state and logs.

One fold, four readers: the kernel's ``%flow status`` / ``%flow logs`` and the
widget (one shared ``RunView`` per notebook session, so each log line is kept
once), the terminal progress of ``nbflow run`` and agents, and ``nbflow demo``.
Records come from the engine's ``EventStream`` or, rebuilt with
``record_from_wire``, from the server's live feed.

Two readings of the same fold:

* ``latest(slug)``: the task's most recent task run, whatever flow run it was
  part of (``%flow status`` after ``--to`` still shows the other tasks' last state).
* ``current(slug)``: the task as part of the flow run in progress or last
  finished: a flow-run ``Running`` starts a new run, and a task it has not
  touched yet is ``Pending`` (the widget draws this).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.core.mapping import count_states, parent_of
from nbflow.core.record import STATE, LogRecord, StateRecord
from nbflow.core.states import StateType

if TYPE_CHECKING:
    from collections.abc import Iterable

    from nbflow.core.events import Event

MAX_LOG_LINES = 2000
"""Log lines kept per task run: a chatty loop must not eat the kernel's memory."""


@dataclass
class TaskView:
    """One task's latest task run: state, attempt, times and its last log lines."""

    slug: str
    task_run_id: str | None = None
    state: str | None = None
    message: str = ""
    attempt: int = 0
    started: float | None = None
    ended: float | None = None
    logs: deque[LogRecord] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    # Position in the fold when last changed: tells runs apart without comparing ids.
    touched: int = 0
    # A mapped task: each child's latest state by index (children are ``slug[i]`` tasks too).
    children: dict[int, str] = field(default_factory=dict)

    def child_counts(self) -> dict[str, int]:
        """How many of a mapped task's children are in each state (empty for a plain task)."""
        return count_states(self.children.values())

    @property
    def duration(self) -> float | None:
        """Seconds from Running to finished (so far, while it runs)."""
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.time()) - self.started

    @property
    def type(self) -> StateType | None:
        """The state as a ``StateType`` (``None`` before the task's first state)."""
        return StateType(self.state) if self.state is not None else None


@dataclass
class FlowRunView:
    """The latest flow run: id, state, message and times."""

    flow_run_id: str
    state: str | None = None
    message: str = ""
    started: float | None = None
    ended: float | None = None
    touched: int = 0


class RunView:
    """Records folded into per-task views; thread-safe (observers run on the stream's thread)."""

    def __init__(self, *, max_logs: int = MAX_LOG_LINES) -> None:
        self._lock = threading.Lock()
        self._max_logs = max_logs
        self._clock = 0
        self.tasks: dict[str, TaskView] = {}
        self.run: FlowRunView | None = None

    def observe(self, batch: Iterable[Event]) -> bool:
        """An ``EventStream`` observer; True when a state (not only logs) changed."""
        changed = False
        with self._lock:
            for record in batch:
                changed = self._apply(record) or changed
        return changed

    def reset(self) -> None:
        """Forget every run."""
        with self._lock:
            self.tasks.clear()
            self.run = None

    # -- folding -----------------------------------------------------------------------

    def _apply(self, record: Event) -> bool:
        self._clock += 1
        if record.kind != STATE:
            if record.task is not None:
                self._task(record).logs.append(record)  # type: ignore[arg-type]
            return False
        assert isinstance(record, StateRecord)
        if record.task is None:
            self._apply_flow(record)
        else:
            self._apply_task(record)
        return True

    def _task(self, record: Event) -> TaskView:
        slug = record.task or ""
        view = self.tasks.get(slug)
        if view is None or (record.task_run_id is not None and view.task_run_id != record.task_run_id):
            view = TaskView(slug, record.task_run_id, logs=deque(maxlen=self._max_logs))
            self.tasks[slug] = view
        return view

    def _apply_task(self, record: StateRecord) -> None:
        view = self._task(record)
        view.state = record.state
        view.message = record.message
        if record.attempt > 0:
            view.attempt = record.attempt
        if record.state == "Running" and view.started is None:
            view.started = record.timestamp  # the first Running starts the clock; retries keep it
        view.ended = record.timestamp if record.is_finished() else None
        view.touched = self._clock
        child = parent_of(view.slug)
        if child is not None:
            parent = self.tasks.get(child[0])
            if parent is not None:
                parent.children[child[1]] = record.state

    def _apply_flow(self, record: StateRecord) -> None:
        run = self.run
        if run is None or run.flow_run_id != record.flow_run_id:
            run = self.run = FlowRunView(record.flow_run_id)
        if record.state == "Running":
            # A (re)start: what tasks did before it is no longer part of the current run.
            run.touched = self._clock
            run.started = record.timestamp
        run.state = record.state
        run.message = record.message
        run.ended = record.timestamp if record.is_finished() else None

    # -- reading -----------------------------------------------------------------------

    def latest(self, slug: str) -> TaskView | None:
        """The task's most recent task run, from whichever flow run."""
        return self.tasks.get(slug)

    def current(self, slug: str) -> TaskView | None:
        """The task within the current flow run: ``None`` before any run, a fresh
        ``Pending`` view while the current run has not touched it yet, and ``None``
        once that run ended without it (a partial run: the task was not part of it)."""
        view = self.tasks.get(slug)
        run = self.run
        if run is None or (view is not None and view.touched >= run.touched):
            return view
        if run.ended is not None:
            return None
        return TaskView(slug, state="Pending")

    def detail(self, slug: str, *, log_lines: int | None = None) -> dict[str, Any]:
        """What ``%flow logs`` and the widget's detail panel show for one task."""
        with self._lock:
            view = self.current(slug)
            if view is None or view.state is None:
                return {
                    "state": None,
                    "message": "",
                    "attempt": 0,
                    "duration": None,
                    "children": {},
                    "logs": [],
                }
            logs = list(view.logs)[-log_lines:] if log_lines else list(view.logs)
            return {
                "state": view.state,
                "message": view.message,
                "attempt": view.attempt,
                "duration": view.duration,
                "children": view.child_counts(),
                "logs": [{"timestamp": r.timestamp, "level": r.level, "message": r.message} for r in logs],
            }

    def snapshot(self, slugs: Iterable[str]) -> dict[str, Any]:
        """The compact form the widget syncs: the run and each graph task in it.

        Times are epoch seconds rounded to milliseconds; empty fields are left out.
        """
        with self._lock:
            run = self.run
            tasks = {}
            for slug in slugs:
                view = self.current(slug)
                if view is not None and view.state is not None:
                    tasks[slug] = _compact(
                        {
                            "state": view.state,
                            "attempt": view.attempt,
                            "message": view.message,
                            "started": _ms(view.started),
                            "ended": _ms(view.ended),
                            "children": view.child_counts() or None,
                        }
                    )
            out_run = None
            if run is not None:
                out_run = _compact(
                    {
                        "flow_run_id": run.flow_run_id,
                        "state": run.state,
                        "message": run.message,
                        "started": _ms(run.started),
                        "ended": _ms(run.ended),
                    }
                )
            return {"run": out_run, "tasks": tasks}

    def counts(self, slugs: Iterable[str]) -> dict[str, int]:
        """How many of ``slugs`` are in each state in the current run (states with none left out)."""
        counts: dict[str, int] = {}
        with self._lock:
            for slug in slugs:
                view = self.current(slug)
                if view is not None and view.state is not None:
                    counts[view.state] = counts.get(view.state, 0) + 1
        return counts


def _ms(t: float | None) -> float | None:
    return round(t, 3) if t is not None else None


def _compact(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if v not in (None, "", 0) or k == "state"}
