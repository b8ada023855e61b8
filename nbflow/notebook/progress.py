"""Terminal progress of a run: one line per task start and finish, then a summary.

An observer of the event stream like every other; used by ``nbflow run``,
exported flow modules and the agent's flow subprocess.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from nbflow.core.events import STATE
from nbflow.core.states import StateType
from nbflow.notebook.report import seconds, shorten

if TYPE_CHECKING:
    from nbflow.core.events import Event
    from nbflow.core.states import State

S = StateType
_MARKS = {
    S.SUCCESS: "ok", S.CACHED: "cached", S.SKIPPED: "skipped", S.FAILED: "FAILED",
    S.TRIGGER_FAILED: "FAILED", S.TIMED_OUT: "TIMEOUT", S.CANCELLED: "cancelled",
}  # fmt: skip


class TerminalProgress:
    def __init__(self, out: TextIO | None = None, *, show_logs: bool = False) -> None:
        self.out = out or sys.stdout
        self.show_logs = show_logs
        self.start = time.time()
        self.started: dict[str, float] = {}
        self.width = 12

    def observe(self, batch: list[Event]) -> None:
        for event in batch:
            if event.task is None:
                continue
            self.width = max(self.width, len(event.task))
            stamp = f"{event.timestamp - self.start:7.2f}s"
            if event.kind != STATE:
                if self.show_logs or event.level == "ERROR":
                    for line in event.message.splitlines():
                        self._print(f"{stamp}  {event.task:<{self.width}}  | {line}")
                continue
            state = event.state
            assert state is not None
            if state.type is S.RUNNING:
                self.started.setdefault(event.task_run_id or event.task, event.timestamp)
                attempt = f" (attempt {state.attempt})" if state.attempt > 1 else ""
                self._print(f"{stamp}  {event.task:<{self.width}}  running{attempt}")
            elif state.type is S.RETRYING:
                self._print(f"{stamp}  {event.task:<{self.width}}  retrying: {shorten(state.message)}")
            elif state.is_finished():
                began = self.started.get(event.task_run_id or event.task)
                took = f" in {seconds(event.timestamp - began)}" if began is not None else ""
                message = f": {shorten(state.message)}" if state.message and not state.is_successful() else ""
                self._print(f"{stamp}  {event.task:<{self.width}}  {_MARKS[state.type]}{took}{message}")

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def summary(flow_name: str, state: State, elapsed: float | None = None) -> str:
    """``flow 'etl' Success: 5 tasks (4 Success, 1 Cached)`` plus one line per failed task."""
    results = state.result or {}
    counts: dict[str, int] = {}
    for task_state in results.values():
        counts[task_state.type.value] = counts.get(task_state.type.value, 0) + 1
    parts = ", ".join(f"{n} {name}" for name, n in counts.items())
    took = f" in {seconds(elapsed)}" if elapsed is not None else ""
    lines = [f"flow {flow_name!r} {state.type.value}: {len(results)} tasks ({parts}){took}"]
    for task, task_state in results.items():
        if task_state.is_failed():
            slug = getattr(task, "slug", None) or str(task)
            lines.append(f"  {slug}: {task_state.type.value}: {shorten(task_state.message, 100)}")
    if state.is_cancelled():
        lines.append(f"  {state.message}")
    return "\n".join(lines)
