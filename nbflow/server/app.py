"""The nbflow server: ``create_app(settings)`` builds the ASGI application.

Routes: ``/graphql`` (behind an API-key and body-size gate), ``/events``
(server-sent events: the live feed), ``/health``, and the web UI (``ui.py``)
on every other path. The lifespan applies
migrations, creates the first tenant on an empty database, and runs the
scheduler and recovery services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from nbflow._version import __version__
from nbflow.server import auth, db, ui
from nbflow.server.gate import GraphQLGate, passed_body
from nbflow.server.live import live_feed
from nbflow.server.schema import build_schema
from nbflow.server.schema.context import Context
from nbflow.server.services import feed
from nbflow.server.services.queuewatch import QueueWatch
from nbflow.server.services.scheduler import scheduler_loop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from starlette.requests import Request


logger = logging.getLogger("nbflow.server")


@dataclass
class Settings:
    """How a server runs: database, body limit, scheduler and recovery timing."""

    database_url: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    scheduler_interval: float = 10.0
    run_scheduler: bool = True
    recovery_interval: float = 5.0
    heartbeat_timeout: float = 60.0
    submitted_timeout: float = 60.0
    run_recovery: bool = True
    on_bootstrap: Callable[[str], None] | None = None
    # Server hooks (services/hookloop.py): how often the loop looks, the first retry's delay,
    # and the SMTP server email hooks go through.
    run_hooks: bool = True
    hook_interval: float = 2.0
    hook_retry_base: float = 10.0
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "nbflow@localhost"


class NbflowGraphQL(GraphQL):
    """strawberry's ASGI app with nbflow's resolver context."""

    def decode_json(self, data: str | bytes) -> object:
        """The document the gate read from this very body, else strawberry's own parse."""
        passed = passed_body.get()
        if passed is not None and passed[0] == data:
            return passed[1]
        return super().decode_json(data)

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        """The caller, database sessions, notifier and settings every resolver gets."""
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


async def health(request: Request) -> Response:
    """``GET /health``: the version and whether the database answers (503 when it does not)."""
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


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI application: routes, and a lifespan that migrates and runs the services."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """Migrate, bootstrap, start the scheduler and recovery; stop them on shutdown."""
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
        tasks.append(asyncio.create_task(QueueWatch(sessions, app.state.notifier).run()))
        if settings.run_hooks:
            from nbflow.server.services.hookloop import hook_loop

            tasks.append(asyncio.create_task(hook_loop(sessions, settings)))
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
            Route("/events", live_feed),
            Route("/graphql", GraphQLGate(graphql_app), methods=["GET", "POST"]),
            *ui.routes(),  # the web UI: /ui/* files, index.html for every page path
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
