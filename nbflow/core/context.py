"""``nbflow.context``: what a running task knows about its run.

Values live in a ``contextvars.ContextVar`` so threads and Dask workers each
see their own task run. Outside a run the run ids are ``None`` and the dates
are today's, so code written for a task also runs as a plain cell.

A run may carry values of its own (``-c key=value`` on ``%flow run``, ``nbflow
run``, ``nbflow runs create`` and backfills): ``nbflow.context.key`` or
``nbflow.context.get("key")`` reads them. ``check_values`` is the one rule for
them: identifier keys, not one of the run's own names, JSON values.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

_run_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "nbflow_run_context", default=None
)

TASK_LOGGER_NAME = "nbflow.task"
_task_logger = logging.getLogger(TASK_LOGGER_NAME)
# Task loggers speak at INFO even when the root logger stays at WARNING.
_task_logger.setLevel(logging.INFO)

_KEYS = (
    "flow_name",
    "flow_run_id",
    "task_run_id",
    "task_name",
    "map_index",
    "parameters",
    "scheduled_start_time",
    "date",
    "today",
    "yesterday",
    "tomorrow",
    "logger",
)
#: Where a run's own ``-c`` values live in the run-context mapping.
VALUES_KEY = "values"
RESERVED = frozenset({*_KEYS, VALUES_KEY, "task_slug", "get", "to_dict"})


def check_values(values: Mapping[str, Any] | None, *, what: str = "context") -> dict[str, Any]:
    """A run's ``-c`` values, checked; a ``ParameterError`` says which is wrong."""
    from nbflow.core.errors import ParameterError

    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ParameterError(f"{what} must be a JSON object of key: value")
    for key, value in values.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise ParameterError(f"{what} key {key!r} must be a Python identifier (letters, digits, _)")
        if key in RESERVED:
            raise ParameterError(
                f"{what} key {key!r} is a name nbflow.context gives every run; choose another "
                f"(reserved: {', '.join(sorted(RESERVED))})"
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ParameterError(f"{what} value of {key!r} must be plain JSON") from None
    return dict(values)


def _date_values(when: datetime) -> dict[str, Any]:
    return {
        "date": when,
        "today": when.strftime("%Y-%m-%d"),
        "yesterday": (when - timedelta(days=1)).strftime("%Y-%m-%d"),
        "tomorrow": (when + timedelta(days=1)).strftime("%Y-%m-%d"),
    }


class _Context:
    """Read-only view of the current run context (``nbflow.context``)."""

    def _values(self) -> Mapping[str, Any]:
        values = _run_context.get()
        if values is None:
            values = {
                "flow_name": None,
                "flow_run_id": None,
                "task_run_id": None,
                "task_name": None,
                "map_index": None,
                "parameters": {},
                "scheduled_start_time": None,
                "logger": _task_logger,
                **_date_values(datetime.now(UTC)),
            }
        return values

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        values = self._values()
        if key in values:
            return values[key]
        if key == "logger":
            return _task_logger
        if key in ("date", "today", "yesterday", "tomorrow"):
            start = values.get("scheduled_start_time") or datetime.now(UTC)
            return _date_values(start)[key]
        own = values.get(VALUES_KEY) or {}
        if key in own:
            return own[key]
        available = ", ".join([*_KEYS, *own])
        raise AttributeError(
            f"nbflow.context has no {key!r}; available: {available} (a run sets its own with -c {key}=VALUE)"
        )

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            return default

    @property
    def values(self) -> dict[str, Any]:
        """The run's own ``-c`` values (empty outside a run or when it set none)."""
        return dict(self._values().get(VALUES_KEY) or {})

    def to_dict(self) -> dict[str, Any]:
        """Every value: the run's own names and its ``-c`` values."""
        return {**{key: getattr(self, key) for key in _KEYS}, **self.values}

    def __dir__(self) -> list[str]:
        return [*_KEYS, *self.values, "get", "to_dict", "values"]

    def __repr__(self) -> str:
        values = self._values()
        return (
            f"<nbflow.context flow_run_id={values.get('flow_run_id')!r} "
            f"task_name={values.get('task_name')!r}>"
        )


context = _Context()


def current() -> Mapping[str, Any] | None:
    """The raw run-context mapping, or ``None`` outside a task run."""
    return _run_context.get()


def set_context(values: Mapping[str, Any]) -> contextvars.Token:
    """Make ``values`` the run context of this context (a task run starting)."""
    return _run_context.set(values)


def reset_context(token: contextvars.Token) -> None:
    """Restore the run context ``set_context`` replaced."""
    _run_context.reset(token)


def task_logger() -> logging.Logger:
    """The ``nbflow.task`` logger: its records become the current task run's logs."""
    return _task_logger
