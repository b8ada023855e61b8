"""Errors the API reports to its callers as they are (everything else is masked)."""

from __future__ import annotations

from nbflow.core.errors import NbflowError


class RequestError(NbflowError):
    """A bad request: its message is shown to the client, with a machine-readable code."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(RequestError):
    code = "NOT_FOUND"


class Forbidden(RequestError):
    code = "FORBIDDEN"


class Conflict(RequestError):
    code = "CONFLICT"
