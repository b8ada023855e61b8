"""Errors the API reports to its callers as they are (everything else is masked)."""

from __future__ import annotations

from nbflow.core.errors import TRY_AGAIN, UNAVAILABLE, NbflowError


class RequestError(NbflowError):
    """A bad request: its message is shown to the client, with a machine-readable code."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(RequestError):
    """Nothing of that id or name in the caller's tenant."""

    code = "NOT_FOUND"


class Forbidden(RequestError):
    """The caller may not do this (a run token naming another run)."""

    code = "FORBIDDEN"


class Conflict(RequestError):
    """The request clashes with the current state (e.g. cancelling a finished run)."""

    code = "CONFLICT"


class TryAgain(RequestError):
    """Nothing was stored and nothing is wrong with the request: other writers kept changing
    the rows it needs while it was decided. The same request may be sent again as it is."""

    code = TRY_AGAIN


class Unavailable(RequestError):
    """The database could not be reached or dropped the connection (``db.is_unavailable``):
    nothing is wrong with the request, and whether it was stored is unknown."""

    code = UNAVAILABLE
    MESSAGE = (
        "the server could not reach its database (a restart or a network fault); send the request "
        "again later: a state or a log line sent twice is stored once"
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)
