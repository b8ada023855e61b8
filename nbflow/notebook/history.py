"""What the last runs did, per task: an observer of the event stream.

``%flow status``, ``%flow logs``, the widget's detail panel and re-running
failed tasks all read from here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.core.events import STATE

if TYPE_CHECKING:
    from nbflow.core.events import Event
    from nbflow.core.states import State

MAX_LOG_LINES = 2000  # per task run: a chatty loop must not eat the kernel's memory


@dataclass
class TaskRecord:
    slug: str
    task_run_id: str | None = None
    state: State | None = None
    started: float | None = None
    ended: float | None = None
    logs: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))

    @property
    def duration(self) -> float | None:
        """Seconds from Running to finished (so far, while it runs)."""
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.time()) - self.started


@dataclass
class FlowRunRecord:
    flow_run_id: str | None = None
    state: State | None = None
    started: float | None = None
    ended: float | None = None


class RunHistory:
    """Latest state and logs of every task, and of the latest flow run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks: dict[str, TaskRecord] = {}
        self.flow_run = FlowRunRecord()

    def observe(self, batch: list[Event]) -> None:
        with self._lock:
            for event in batch:
                if event.task is None:
                    self._flow_event(event)
                else:
                    self._task_event(event)

    def _flow_event(self, event: Event) -> None:
        if event.kind != STATE or event.state is None:
            return
        run = self.flow_run
        if event.flow_run_id != run.flow_run_id:
            self.flow_run = run = FlowRunRecord(flow_run_id=event.flow_run_id)
        run.state = event.state
        if event.state.type.value == "Running" and run.started is None:
            run.started = event.timestamp
        if event.state.is_finished():
            run.ended = event.timestamp

    def _task_event(self, event: Event) -> None:
        record = self.tasks.get(event.task)  # type: ignore[arg-type]
        if record is None or (event.task_run_id is not None and record.task_run_id != event.task_run_id):
            record = TaskRecord(slug=event.task, task_run_id=event.task_run_id)  # type: ignore[arg-type]
            self.tasks[event.task] = record  # type: ignore[index]
        if event.kind == STATE and event.state is not None:
            record.state = event.state
            if event.state.type.value == "Running" and record.started is None:
                record.started = event.timestamp
            if event.state.is_finished():
                record.ended = event.timestamp
        else:
            record.logs.append((event.timestamp, event.level or "INFO", event.message))

    def reset(self) -> None:
        with self._lock:
            self.tasks.clear()
            self.flow_run = FlowRunRecord()

    def detail(self, slug: str) -> dict[str, Any]:
        with self._lock:
            record = self.tasks.get(slug)
            if record is None:
                return {"state": None, "message": "", "logs": [], "attempt": 0}
            state = record.state
            return {
                "state": state.type.value if state else None,
                "message": state.message if state else "",
                "attempt": state.attempt if state else 0,
                "duration": record.duration,
                "logs": [{"timestamp": t, "level": lvl, "message": msg} for t, lvl, msg in record.logs],
            }
