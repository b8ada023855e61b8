"""The one exception tree of nbflow.

Every error nbflow raises on purpose is an ``NbflowError``; its message says
what was wrong, where (the cell, task, field or URL), and what to do::

    NbflowError
    ├── GraphError                  the shape of a flow is wrong
    │   ├── CycleError              edges make a cycle (names it)
    │   └── UnknownTaskError        a name or task that is not in the flow
    ├── ParameterError              unknown, missing or non-JSON parameters
    ├── ScheduleError               an invalid cron string or interval
    ├── StateTransitionError        a transition the state table forbids
    ├── RecordError                 a run record in wire form is malformed
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
    """Edges make a cycle; ``cycle`` lists it in execution order."""

    def __init__(self, message: str, *, cycle: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.cycle = list(cycle)


class UnknownTaskError(GraphError):
    """A name or task that is not in the flow."""


class ParameterError(NbflowError):
    """Unknown, missing or non-JSON parameters; ``known`` lists the flow's."""

    def __init__(self, message: str, *, known: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.known = list(known)


class ScheduleError(NbflowError):
    """An invalid cron string or interval, or a schedule with no future time."""


class StateTransitionError(NbflowError):
    """A state change the transition table forbids."""


class RecordError(NbflowError):
    """A run record in wire form is malformed: the message names the field and what it must be."""


class RunError(NbflowError):
    """A run could not start or went wrong."""


class HiddenDependencyError(RunError):
    """A task reads a name no task, setup or params cell defines; ``hidden`` maps task to names."""

    def __init__(self, message: str, *, hidden: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.hidden = dict(hidden or {})


class NotebookError(NbflowError):
    """A task cell, a magic's options or a .ipynb file is bad."""


class ClientError(NbflowError):
    """Talking to the nbflow server failed."""


class TransportError(ClientError):
    """The server could not be reached (after retries)."""


class AuthError(ClientError):
    """The API key was missing, wrong, revoked, or its role may not do this."""


#: The error code of a request the server did not store but would take as it is, later
#: (other writers kept moving the rows it needs): the server's ``TryAgain``, the agent's spool.
TRY_AGAIN = "TRY_AGAIN"

#: The error code of a request the server could not serve because its database could not be
#: reached or dropped the connection (a restart, a failover, a network fault). Whether it was
#: stored is unknown; a record that carries its own id (a state, a log line) may go again, and
#: is stored once: the agent's spool keeps such a batch for later.
UNAVAILABLE = "UNAVAILABLE"


class APIError(ClientError):
    """The server refused the request; ``errors`` holds its GraphQL errors."""

    def __init__(self, message: str, *, errors: Sequence[dict] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)

    @property
    def code(self) -> str | None:
        """The first error's ``extensions.code`` (``BAD_REQUEST``, ``TRY_AGAIN``, ...), if any."""
        extensions = self.errors[0].get("extensions") if self.errors else None
        return extensions.get("code") if isinstance(extensions, dict) else None


def asks_again(exc: BaseException) -> bool:
    """Whether the server said to send the same request again later (``TRY_AGAIN``,
    ``UNAVAILABLE``): nothing is wrong with the request itself."""
    return isinstance(exc, APIError) and exc.code in (TRY_AGAIN, UNAVAILABLE)


class StorageError(NbflowError):
    """Flow code is missing, unreadable, or its SHA-256 does not match."""
