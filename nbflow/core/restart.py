"""Restart from failure: which tasks of an earlier run a new run reuses, with their stored results.

A restarted run re-runs the tasks that did not succeed and everything downstream of
them; every other task that succeeded is reused (``FlowRunner(initial_states=...)``
records it ``Cached``, "reused: Success in an earlier run"). Only the results a task
that runs again reads are loaded from the result store (``core.results``); a needed
result that was never stored, or cannot be read, makes its task run again too.

A mapped task that failed while its upstream is reused runs only its children that did
not succeed: the others' results come from the ``PartialMap`` it stored
(``Task.reused_children``, set here on the flow's task).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbflow.core.errors import StorageError
from nbflow.core.mapping import PartialMap
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
    #: Mapped tasks that run again: how many children they reuse, of how many.
    children: dict[str, tuple[int, int]] = field(default_factory=dict)


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
    children = _reuse_children(flow, rerun, reused, earlier, notes)
    return RestartPlan(states, [t.slug or "" for t in tasks if t in rerun], notes, children)


def _reuse_children(
    flow: Flow, rerun: set[Task], reused: set[Task], earlier: Mapping[str, Earlier], notes: dict[str, str]
) -> dict[str, tuple[int, int]]:
    """Mark each mapped task that runs again only for its own failed children (its upstream
    is all reused, so every child's inputs are the earlier run's) with the children it
    reuses; (reused, of) per task slug."""
    counts: dict[str, tuple[int, int]] = {}
    for task in rerun:
        slug = task.slug or ""
        record = earlier.get(slug)
        if not task.map_keys or record is None or not is_ref(record.result_ref):
            continue
        if any(e.upstream not in reused for e in flow.upstream_edges(task)):
            continue  # an upstream runs again: every child's inputs may differ
        try:
            stored = load(record.result_ref or "")
        except StorageError as exc:
            notes[slug] = f"all its children run again: {exc}"
            continue
        if isinstance(stored, PartialMap):
            task.reused_children = dict(stored.results)
            counts[slug] = (len(stored.results), stored.count)
    return counts


def _succeeded(record: Earlier | None) -> bool:
    return record is not None and record.state in _SUCCESSFUL


_SUCCESSFUL = frozenset(t.value for t in SUCCESSFUL_TYPES)
