"""The gate in front of ``/graphql``: body size, body shape, API key.

GraphQL sees a request only when it is a JSON object with a string ``query``
(optional ``variables`` object and ``operationName``), within the size limit,
nested at most ``MAX_DEPTH`` levels, and carries a valid key. Everything else
is answered here with a JSON error and a status that says what was wrong:
never a plain-text 500, and never a traceback in the server's log.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from nbflow.server import auth, db
from nbflow.server.errors import Unavailable

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have."""


def error(status: int, message: str, code: str) -> JSONResponse:
    """A GraphQL-shaped error response (``errors[0].extensions.code``) with an HTTP status."""
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status
    )


def unavailable() -> JSONResponse:
    """The 503 answer of a request that found the database unavailable (``db.is_unavailable``)."""
    return error(503, Unavailable.MESSAGE, Unavailable.code)


def bearer(request: Request) -> str | None:
    """The API key of ``Authorization: Bearer``. Only the header: a key in a URL ends up in
    proxy logs and browser history."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def read_body(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(document, None)`` when ``body`` is a GraphQL request nbflow serves, else
    ``(None, why not)``."""
    try:
        document = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        return None, f"the request body is nested more than {MAX_DEPTH} levels deep"
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        return None, f'the request body is not JSON ({exc}); send {{"query": "...", "variables": {{...}}}}'
    if not isinstance(document, dict):
        return None, f"the request body must be a JSON object with a 'query', got {type(document).__name__}"
    if not isinstance(document.get("query"), str):
        return None, "the request body needs a 'query' string"
    if not isinstance(document.get("variables", {}), dict | None):
        return None, "'variables' must be a JSON object"
    if not isinstance(document.get("operationName"), str | None):
        return None, "'operationName' must be a string"
    if _depth(document) > MAX_DEPTH:
        return None, f"the request body is nested more than {MAX_DEPTH} levels deep"
    return document, None


#: The body the gate let through and its document, for the GraphQL app of the same request
#: (``app.NbflowGraphQL.decode_json``): a batch's body is parsed once, not twice.
passed_body: ContextVar[tuple[bytes, dict[str, Any]] | None] = ContextVar("nbflow_passed_body", default=None)


#: Whether the request's strings may hold a NUL character (``nul_possible``), for the schema:
#: its ``NoNul`` extension runs only then (unknown requests: they may).
may_hold_nul: ContextVar[bool] = ContextVar("nbflow_may_hold_nul", default=True)


def nul_possible(raw: bytes, query: str) -> bool:
    """False when no string of the request can hold a NUL character. Strict JSON spells one
    only as the escape ``\\u0000``; a GraphQL string of the document also as ``\\u{0}`` (any
    number of zeros), which JSON may hide as ``\\u005cu{0}``: so the raw body is looked at for
    the first and the decoded document for any escape at all."""
    return b"\\u0000" in raw or "\\u" in query


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _depth(value: Any) -> int:
    """How deeply a decoded JSON value nests (a scalar: 0), counted up to ``MAX_DEPTH + 1``."""
    # Level by level, carrying only containers: a batch's thousands of scalars are looked at
    # once each, in a comprehension (JSON decodes to exactly dict and list).
    level = [value] if type(value) in (dict, list) else []
    depth = 0
    while level and depth <= MAX_DEPTH:
        depth += 1
        level = [
            child
            for item in level
            for child in (item.values() if type(item) is dict else item)
            if type(child) in (dict, list)
        ]
    return depth


class GraphQLGate:
    """An ASGI wrapper of the GraphQL app: checks size, shape and key, then replays the body."""

    def __init__(self, graphql_app: ASGIApp) -> None:
        self.graphql_app = graphql_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response, body, document = await self._check(scope, receive)
        if response is not None:
            await response(scope, receive, send)
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        # Set here and reset after, so nothing of this request outlives it in the caller's
        # context (an in-process transport runs every request in one task).
        passed = passed_body.set((body, document))
        nul = may_hold_nul.set(nul_possible(body, document["query"]))
        try:
            await self.graphql_app(scope, replay, send)
        finally:
            may_hold_nul.reset(nul)
            passed_body.reset(passed)

    async def _check(
        self, scope: Scope, receive: Receive
    ) -> tuple[JSONResponse | None, bytes, dict[str, Any]]:
        """A refusal, or the body and the document read from it."""
        if scope["type"] != "http":
            return error(400, "websocket subscriptions are not served; use /events", "BAD_REQUEST"), b"", {}
        request = Request(scope, receive)
        if request.method != "POST":
            return error(405, "send GraphQL requests with POST", "METHOD_NOT_ALLOWED"), b"", {}
        limit = request.app.state.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _too_large(limit), b"", {}
        body = bytearray()
        async for chunk in request.stream():  # chunked bodies have no length to check up front
            body += chunk
            if len(body) > limit:
                return _too_large(limit), b"", {}
        key = bearer(request)
        if not key:
            return (
                error(
                    401, "missing API key: send the header 'Authorization: Bearer <key>'", "UNAUTHENTICATED"
                ),
                b"",
                {},
            )
        principal = auth.remembered(key)  # most requests: a key or token seen seconds ago
        if principal is None:
            try:
                async with request.app.state.sessions() as session:
                    principal = await auth.authenticate(session, key)
            except Exception as exc:
                if not db.is_unavailable(exc):
                    raise
                return unavailable(), b"", {}
        if principal is None:
            return error(401, "invalid or revoked API key", "UNAUTHENTICATED"), b"", {}
        raw = bytes(body)
        document, problem = read_body(raw)
        if document is None:
            return error(400, problem or "bad request", "BAD_REQUEST"), b"", {}
        scope["nbflow.principal"] = principal
        return None, raw, document


def _too_large(limit: int) -> JSONResponse:
    return error(
        413, f"request body over the limit of {limit} bytes; send smaller batches", "PAYLOAD_TOO_LARGE"
    )
