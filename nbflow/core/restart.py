"""Restart from failure: which tasks of an earlier run a new run reuses, with their stored results.

A restarted run re-runs the tasks that did not succeed and everything downstream of
them; every other task that succeeded is reused (``FlowRunner(initial_states=...)``
records it ``Cached``, "reused: Success in an earlier run"). Only the results a task
that runs again reads are loaded from the result store (``core.results``); a needed
result that was never stored, or cannot be read, makes its task run again too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbflow.core.errors import StorageError
from nbflow.core.results import is_ref, load
from nbflow.core.states import SUCCESSFUL_TYPES, State, StateType

if TYPE_CHECKING:
    from collections.abc import Mapping

    from nbflow.core.flows import Flow
    from nbflow.core.tasks import Task


@dataclass(frozen=True)
class Earlier:
    """What an earlier run recorded of one task: its final state and its result's reference."""

    state: str
    result_ref: str | None = None


@dataclass
class RestartPlan:
    """The tasks a restart reuses (their states, results loaded where needed) and re-runs."""

    reused: dict[Task, State]
    rerun: list[str]
    #: Why a task that succeeded runs again anyway (its stored result is missing or unreadable).
    notes: dict[str, str]


def plan_restart(flow: Flow, earlier: Mapping[str, Earlier]) -> RestartPlan:
    """What a restart of ``flow`` reuses from a run that recorded ``earlier`` (by task slug)."""
    tasks = flow.sorted_tasks()
    succeeded = {t for t in tasks if _succeeded(earlier.get(t.slug or ""))}
    notes: dict[str, str] = {}
    loaded: dict[Task, object] = {}
    while True:
        rerun = flow.descendants(set(tasks) - succeeded)
        reused = succeeded - rerun
        needed = {e.upstream for t in rerun for e in flow.upstream_edges(t) if e.upstream in reused}
        missing = set()
        for task in needed - set(loaded):
            ref = earlier[task.slug or ""].result_ref
            if not is_ref(ref):
                notes[task.slug or ""] = "its result was not stored"
                missing.add(task)
                continue
            try:
                loaded[task] = load(ref or "")
            except StorageError as exc:
                notes[task.slug or ""] = str(exc)
                missing.add(task)
        if not missing:
            break
        succeeded -= missing  # run it again, and what reads it
    states = {}
    for task in reused:
        record = earlier[task.slug or ""]
        states[task] = State(
            StateType(record.state),
            "reused from an earlier run",
            result=loaded.get(task),
            result_ref=record.result_ref,
        )
    return RestartPlan(states, [t.slug or "" for t in tasks if t in rerun], notes)


def _succeeded(record: Earlier | None) -> bool:
    return record is not None and record.state in _SUCCESSFUL


_SUCCESSFUL = frozenset(t.value for t in SUCCESSFUL_TYPES)
