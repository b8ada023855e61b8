"""The nbflow server: ``create_app(settings)`` builds the ASGI application.

Routes: ``/graphql`` (behind an API-key and body-size gate), ``/events``
(server-sent events: the live feed), ``/health``. The lifespan applies
migrations, creates the first tenant on an empty database, and runs the
scheduler and recovery services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

from nbflow._version import __version__
from nbflow.server import auth, db
from nbflow.server.schema import build_schema
from nbflow.server.schema.context import Context
from nbflow.server.services import feed
from nbflow.server.services.scheduler import scheduler_loop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from starlette.types import Receive, Scope, Send

logger = logging.getLogger("nbflow.server")


@dataclass
class Settings:
    database_url: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    scheduler_interval: float = 10.0
    run_scheduler: bool = True
    recovery_interval: float = 5.0
    heartbeat_timeout: float = 60.0
    submitted_timeout: float = 60.0
    run_recovery: bool = True
    on_bootstrap: Callable[[str], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("access_token")


class NbflowGraphQL(GraphQL):
    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        state = request.app.state
        return {
            "request": request,
            "response": response,
            "nbflow": Context(
                principal=request.scope["nbflow.principal"],
                sessions=state.sessions,
                notifier=state.notifier,
                settings=state.settings,
            ),
        }


class GraphQLGate:
    """Authenticates the key and bounds the body before GraphQL sees the request."""

    def __init__(self, graphql_app: GraphQL) -> None:
        self.graphql_app = graphql_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _error(400, "websocket subscriptions are not served; use /events", "BAD_REQUEST")(
                scope, receive, send
            )
            return
        request = Request(scope, receive)
        settings: Settings = request.app.state.settings
        limit = settings.max_body_bytes
        too_large = _error(
            413, f"request body over the limit of {limit} bytes; send smaller batches", "PAYLOAD_TOO_LARGE"
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        body = bytearray()
        async for chunk in request.stream():  # chunked bodies have no length to check up front
            body += chunk
            if len(body) > limit:
                await too_large(scope, receive, send)
                return
        key = _bearer(request)
        if not key:
            await _error(
                401, "missing API key: send the header 'Authorization: Bearer <key>'", "UNAUTHENTICATED"
            )(scope, receive, send)
            return
        async with request.app.state.sessions() as session:
            principal = await auth.authenticate(session, key)
        if principal is None:
            await _error(401, "invalid or revoked API key", "UNAUTHENTICATED")(scope, receive, send)
            return
        scope["nbflow.principal"] = principal
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.graphql_app(scope, replay, send)


async def health(request: Request) -> Response:
    engine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
    return JSONResponse(
        {"status": "ok", "version": __version__, "database": database, "backend": engine.dialect.name}
    )


async def events(request: Request) -> Response:
    """Server-sent events: state changes and logs of the caller's tenant (or one flow run)."""
    state = request.app.state
    async with state.sessions() as session:
        principal = await auth.authenticate(session, _bearer(request))
        if principal is None:
            return _error(401, "missing, invalid or revoked API key", "UNAUTHENTICATED")
        if principal.role == auth.AGENT:
            return _error(403, "an agent key may not read the live feed", "FORBIDDEN")
        start = request.query_params.get("cursor")
        cursor = (
            feed.Cursor.decode(start) if start else await feed.latest_cursor(session, principal.tenant_id)
        )
    flow_run_id = request.query_params.get("flow_run_id")
    if flow_run_id and request.query_params.get("from") == "start":
        cursor = feed.Cursor()

    async def stream() -> AsyncIterator[str]:
        nonlocal cursor
        yield ": nbflow live feed\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            async with state.sessions() as session:
                batch, cursor = await feed.events_since(
                    session, principal.tenant_id, cursor, flow_run_id=flow_run_id
                )
            if batch:
                idle = 0.0
                yield f"id: {cursor.encode()}\nevent: batch\ndata: {json.dumps(batch)}\n\n"
                continue
            await state.notifier.wait(0.25)
            idle += 0.25
            if idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = db.create_engine(db.normalize_url(settings.database_url))
        sessions = db.sessionmaker(engine)
        async with db.startup_lock(engine):
            await db.migrate(engine)
            async with sessions.begin() as session:
                key = await auth.bootstrap(session)
        app.state.engine = engine
        app.state.sessions = sessions
        app.state.notifier = feed.Notifier()
        app.state.settings = settings
        app.state.bootstrap_key = key
        if key is not None and settings.on_bootstrap is not None:
            settings.on_bootstrap(key)
        tasks = []
        if settings.run_scheduler:
            tasks.append(
                asyncio.create_task(
                    scheduler_loop(sessions, settings.scheduler_interval, app.state.notifier.notify)
                )
            )
        if settings.run_recovery:
            from nbflow.server.services.recovery import recovery_loop

            tasks.append(asyncio.create_task(recovery_loop(sessions, settings, app.state.notifier.notify)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await engine.dispose()

    graphql_app = NbflowGraphQL(build_schema(), graphql_ide=None, allow_queries_via_get=False)
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/events", events),
            Route("/graphql", GraphQLGate(graphql_app), methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
