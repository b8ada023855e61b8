"""What each ``%%task`` cell's badge says: its task's state, time and attempt, and why it is out of date.

A badge shows the task's most recent run: in this kernel (a cell run, ``%flow run``,
a widget button) or on the server, in a run this kernel watches (``%flow run --server``,
``%flow watch``), whichever is newer. Two findings come on top of the state:

* **stale**: the cell's code changed since that run, or a task it reads from ran
  again (or is stale itself) after it: its outputs may not match what it would give now;
* **upstream failed**: a task it depends on (directly or through others) ended
  failed, so its own state is not the result of its inputs.

``cell_states`` is pure (a flow, a run view and the sources that ran): the comm in
``cellcomm.py`` sends its result, and unit tests call it directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbflow.core.errors import NbflowError
from nbflow.core.states import FAILED_TYPES, StateType

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from nbflow.cells.cellflow import NotebookFlow
    from nbflow.core.runview import RunView, TaskView

_FAILED = frozenset(s.value for s in FAILED_TYPES)


def cell_states(
    flow: NotebookFlow,
    view: RunView,
    ran_sources: Mapping[str, str],
    *,
    watched: Sequence[RunView] = (),
) -> dict[str, dict[str, Any]]:
    """``{cell id: badge}`` for every task cell the frontend can name (it has a cell id).

    A badge is ``{"task", "state", "attempt", "duration", "message", "stale",
    "upstream_failed"}``: ``state`` is ``None`` for a task defined but never run,
    ``stale`` a short reason or ``""``, ``upstream_failed`` the failed tasks upstream.
    ``watched`` are the views of server runs followed from this kernel.
    """
    newest = _Newest([view, *watched])
    try:
        resolution = flow.resolve()
        upstream = {name: resolution.upstream(name) for name in flow.task_names}
    except NbflowError:
        upstream = {name: [] for name in flow.task_names}  # a broken notebook: states only
    stale: dict[str, str] = {}
    failed_up: dict[str, list[str]] = {}
    for name in flow.task_names:
        _stale_reason(name, flow, newest, ran_sources, upstream, stale, set())
        _failed_upstream(name, newest, upstream, failed_up, set())
    badges: dict[str, dict[str, Any]] = {}
    for name in flow.task_names:
        cell = flow.task_cell(name)
        if not cell.cell_id:
            continue
        task = newest.latest(name)
        badges[cell.cell_id] = {
            "task": name,
            "state": task.state if task is not None else None,
            "attempt": task.attempt if task is not None else 0,
            "duration": _rounded(task.duration) if task is not None else None,
            "message": task.message if task is not None else "",
            "stale": stale.get(name, ""),
            "upstream_failed": failed_up.get(name, []),
        }
    return badges


class _Newest:
    """Several run views read as one: each task's most recent task run among them."""

    def __init__(self, views: Sequence[RunView]) -> None:
        self._views = views

    def latest(self, slug: str) -> TaskView | None:
        found = [v for v in (view.latest(slug) for view in self._views) if v is not None]
        return max(found, key=lambda t: t.ended or t.started or 0.0, default=None)


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def _ended(view: _Newest, name: str) -> float | None:
    task = view.latest(name)
    return task.ended if task is not None else None


def _stale_reason(
    name: str,
    flow: NotebookFlow,
    view: _Newest,
    ran_sources: Mapping[str, str],
    upstream: Mapping[str, list[str]],
    memo: dict[str, str],
    visiting: set[str],
) -> str:
    if name in memo:
        return memo[name]
    if name in visiting:  # an explicit --upstream cycle: build() reports it, not the badge
        return ""
    visiting.add(name)
    reason = ""
    ended = _ended(view, name)
    ran = ran_sources.get(name)
    if ended is not None and ran is not None and ran != flow.task_cell(name).source:
        reason = "its code changed since it ran"
    elif ended is not None:
        for up in upstream.get(name, []):
            up_ended = _ended(view, up)
            if up_ended is not None and up_ended > ended:
                reason = f"{up!r} ran again after it"
                break
            if _stale_reason(up, flow, view, ran_sources, upstream, memo, visiting):
                reason = f"{up!r} is out of date"
                break
    memo[name] = reason
    return reason


def _failed_upstream(
    name: str,
    view: _Newest,
    upstream: Mapping[str, list[str]],
    memo: dict[str, list[str]],
    visiting: set[str],
) -> list[str]:
    """The failed tasks upstream of ``name`` that made it fail: the roots, not every task between."""
    if name in memo:
        return memo[name]
    if name in visiting:
        return []
    visiting.add(name)
    found: list[str] = []
    for up in upstream.get(name, []):
        state = getattr(view.latest(up), "state", None)
        if state == StateType.TRIGGER_FAILED:  # it did not run because of its own upstream: name the cause
            found.extend(_failed_upstream(up, view, upstream, memo, visiting) or [up])
        elif state in _FAILED:
            found.append(up)
    memo[name] = list(dict.fromkeys(found))
    return memo[name]
