"""Terminal progress of a run: one line per task start and finish, then a summary.

An observer of the event stream like every other; used by ``nbflow run``,
exported flow modules and the agent's flow subprocess.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from nbflow.core.record import StateRecord
from nbflow.core.runner import counted
from nbflow.core.runview import RunView
from nbflow.core.states import SUCCESSFUL_TYPES, StateType
from nbflow.terminal.report import seconds, shorten

if TYPE_CHECKING:
    from nbflow.core.events import Event
    from nbflow.core.states import State

S = StateType
_MARKS = {
    S.SUCCESS: "ok", S.CACHED: "cached", S.SKIPPED: "skipped", S.FAILED: "FAILED",
    S.TRIGGER_FAILED: "FAILED", S.TIMED_OUT: "TIMEOUT", S.CANCELLED: "cancelled",
}  # fmt: skip


class TerminalProgress:
    """An observer that prints one line per task start, retry and finish (and error logs)."""

    def __init__(self, out: TextIO | None = None, *, show_logs: bool = False) -> None:
        self.out = out or sys.stdout
        self.show_logs = show_logs
        self.start = time.time()
        self.view = RunView(max_logs=1)
        self.width = 12

    def observe(self, batch: list[Event]) -> None:
        """Print the batch's task lines (an ``EventStream`` observer)."""
        self.view.observe(batch)
        for record in batch:
            if record.task is None:
                continue
            self.width = max(self.width, len(record.task))
            head = f"{record.timestamp - self.start:7.2f}s  {record.task:<{self.width}}"
            if not isinstance(record, StateRecord):
                if self.show_logs or record.level == "ERROR":
                    for line in record.message.splitlines():
                        self._print(f"{head}  | {line}")
                continue
            state = record.type
            if state is S.RUNNING:
                attempt = f" (attempt {record.attempt})" if record.attempt > 1 else ""
                self._print(f"{head}  running{attempt}")
            elif state is S.RETRYING:
                self._print(f"{head}  retrying: {shorten(record.message)}")
            elif record.is_finished():
                view = self.view.latest(record.task)
                took = f" in {seconds(view.duration)}" if view is not None and view.started else ""
                failed = record.message and state not in SUCCESSFUL_TYPES
                message = f": {shorten(record.message)}" if failed else ""
                self._print(f"{head}  {_MARKS[state]}{took}{message}")

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def summary(flow_name: str, state: State, elapsed: float | None = None) -> str:
    """``flow 'etl' Success: 5 tasks (4 Success, 1 Cached)`` plus one line per failed task
    and per task that succeeded only after retries (its attempt)."""
    results = {t: s for t, s in (state.result or {}).items() if getattr(t, "kind", "") != "parameter"}
    counts: dict[str, int] = {}
    for task_state in results.values():
        counts[task_state.type.value] = counts.get(task_state.type.value, 0) + 1
    parts = ", ".join(f"{n} {name}" for name, n in counts.items())
    took = f" in {seconds(elapsed)}" if elapsed is not None else ""
    lines = [f"flow {flow_name!r} {state.type.value}: {counted(len(results), 'task')} ({parts}){took}"]
    for task, task_state in results.items():
        if task_state.is_failed():
            slug = getattr(task, "slug", None) or str(task)
            lines.append(f"  {slug}: {task_state.type.value}: {shorten(task_state.message, 100)}")
        elif task_state.type is StateType.SUCCESS and task_state.attempt > 1:  # not a reused (Cached) one
            slug = getattr(task, "slug", None) or str(task)
            lines.append(f"  {slug}: {task_state.type.value} on attempt {task_state.attempt}")
    if state.is_cancelled():
        lines.append(f"  {state.message}")
    return "\n".join(lines)
