"""nbflow: workflow orchestration that lives in the notebook.

``%load_ext nbflow`` turns cells into tasks; the same engine runs plain Python
flows built with ``@task`` and ``Flow``.
"""

from __future__ import annotations

from typing import Any

from nbflow import triggers
from nbflow._version import __version__
from nbflow.core.context import context
from nbflow.core.errors import (
    CycleError,
    GraphError,
    NbflowError,
    ParameterError,
    RunError,
    ScheduleError,
    StateTransitionError,
)
from nbflow.core.events import Event, EventStream
from nbflow.core.executors import DaskExecutor, Executor, LocalExecutor, ThreadExecutor
from nbflow.core.flows import Flow
from nbflow.core.mapping import unmapped
from nbflow.core.record import LogRecord, StateRecord
from nbflow.core.runner import FlowRunner
from nbflow.core.schedules import CronSchedule, IntervalSchedule, Schedule
from nbflow.core.secrets import secret
from nbflow.core.states import State, StateType
from nbflow.core.tasks import Edge, Parameter, Task, task

__all__ = [
    "AsyncClient",
    "Client",
    "CronSchedule",
    "CycleError",
    "DaskExecutor",
    "Edge",
    "Event",
    "EventStream",
    "Executor",
    "Flow",
    "FlowRunner",
    "FlowWidget",
    "GraphError",
    "IntervalSchedule",
    "LocalExecutor",
    "LogRecord",
    "NbflowError",
    "Parameter",
    "ParameterError",
    "RunError",
    "Schedule",
    "ScheduleError",
    "StartFlowRun",
    "State",
    "StateRecord",
    "StateTransitionError",
    "StateType",
    "Task",
    "ThreadExecutor",
    "__version__",
    "context",
    "secret",
    "task",
    "triggers",
    "unmapped",
]


# Heavy parts load on first use, so `import nbflow` stays light (httpx, anywidget).
_LAZY = {
    "Client": "nbflow.client",
    "AsyncClient": "nbflow.client",
    "FlowWidget": "nbflow.kernel.widget",
    "StartFlowRun": "nbflow.flowrun",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nbflow' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbflow``: register the %%task, %%params, %%setup and %flow magics."""
    from nbflow.kernel.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbflow``: remove the magics and stop the session's run."""
    from nbflow.kernel.magics import unload_ipython_extension as unload

    unload(ipython)
