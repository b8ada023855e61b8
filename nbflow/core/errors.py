"""The one exception tree of nbflow.

Every error nbflow raises on purpose is an ``NbflowError``; its message says
what was wrong, where (the cell, task, field or URL), and what to do::

    NbflowError
    ├── GraphError                  the shape of a flow is wrong
    │   ├── CycleError              edges make a cycle (names it)
    │   ├── DuplicateTaskError      two tasks claim one name
    │   └── UnknownTaskError        a name or task that is not in the flow
    ├── ParameterError              unknown, missing or non-JSON parameters
    ├── ScheduleError               an invalid cron string or interval
    ├── StateTransitionError        a transition the state table forbids
    ├── RunError                    a run could not start or went wrong
    │   └── HiddenDependencyError   a task reads a name no cell defines
    ├── NotebookError               a task cell, magic option or .ipynb is bad
    ├── ClientError                 talking to the nbflow server failed
    │   ├── TransportError          the server could not be reached
    │   ├── AuthError               the API key was missing, wrong or denied
    │   └── APIError                the server answered with a GraphQL error
    └── StorageError                flow code missing or its sha256 mismatched

Context travels keyword-only, so a caller can react without parsing text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


class NbflowError(Exception):
    """Root of every error nbflow raises on purpose."""


class GraphError(NbflowError):
    """The flow's graph is not valid."""


class CycleError(GraphError):
    def __init__(self, message: str, *, cycle: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.cycle = list(cycle)


class DuplicateTaskError(GraphError):
    pass


class UnknownTaskError(GraphError):
    pass


class ParameterError(NbflowError):
    def __init__(self, message: str, *, known: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.known = list(known)


class ScheduleError(NbflowError):
    pass


class StateTransitionError(NbflowError):
    pass


class RunError(NbflowError):
    pass


class HiddenDependencyError(RunError):
    def __init__(self, message: str, *, hidden: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.hidden = dict(hidden or {})


class NotebookError(NbflowError):
    pass


class ClientError(NbflowError):
    pass


class TransportError(ClientError):
    pass


class AuthError(ClientError):
    pass


class APIError(ClientError):
    def __init__(self, message: str, *, errors: Sequence[dict] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class StorageError(NbflowError):
    pass
