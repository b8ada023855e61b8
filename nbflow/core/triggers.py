"""Triggers decide, from the finished states of a task's upstream tasks, whether it runs.

A trigger is any ``Callable[[Collection[State]], bool]``. When it returns
``False`` the runner ends the task ``TriggerFailed`` if an upstream task
failed (so a failure is never silently skipped) and ``Skipped`` otherwise
(e.g. an ``any_failed`` clean-up task when everything went well).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from nbflow.core.errors import NbflowError
from nbflow.core.states import State

Trigger = Callable[[Collection[State]], bool]


def all_successful(upstream: Collection[State]) -> bool:
    """Run only if every upstream task succeeded (the default)."""
    return all(state.is_successful() for state in upstream)


def all_finished(upstream: Collection[State]) -> bool:
    """Run once every upstream task finished, whatever its outcome."""
    return all(state.is_finished() for state in upstream)


def any_successful(upstream: Collection[State]) -> bool:
    """Run if at least one upstream task succeeded (or there is none)."""
    return not upstream or any(state.is_successful() for state in upstream)


def any_failed(upstream: Collection[State]) -> bool:
    """Run if at least one upstream task failed: clean-up and alerting tasks."""
    return any(state.is_failed() for state in upstream)


def all_failed(upstream: Collection[State]) -> bool:
    """Run only if every upstream task failed."""
    return all(state.is_failed() for state in upstream)


def manual_only(upstream: Collection[State]) -> bool:  # noqa: ARG001
    """Never run automatically; the task runs only when asked for by name."""
    return False


TRIGGERS: dict[str, Trigger] = {
    fn.__name__: fn
    for fn in (all_successful, all_finished, any_successful, any_failed, all_failed, manual_only)
}


def resolve(trigger: str | Trigger | None) -> Trigger:
    """A trigger from its name, its function, or ``None`` (``all_successful``)."""
    if trigger is None:
        return all_successful
    if callable(trigger):
        return trigger
    fn = TRIGGERS.get(trigger.strip().replace("-", "_"))
    if fn is None:
        raise NbflowError(
            f"unknown trigger {trigger!r}; use one of: {', '.join(TRIGGERS)} "
            "or a function taking the upstream states and returning a bool"
        )
    return fn


def trigger_name(trigger: Trigger) -> str:
    """The name of a trigger function (its own name for a custom one)."""
    return getattr(trigger, "__name__", repr(trigger))
