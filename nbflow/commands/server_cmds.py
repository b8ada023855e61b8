"""``nbflow server start`` and ``nbflow server tenants create``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from nbflow.commands.common import command_group
from nbflow.core.errors import NbflowError

if TYPE_CHECKING:
    import argparse

    from starlette.applications import Starlette


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


#: The server's settings as JSON, for the app factory in each worker process.
SETTINGS_ENV = "NBFLOW_SERVER_SETTINGS"


def cmd_start(args: argparse.Namespace) -> int:
    """``nbflow server start``."""
    import uvicorn

    from nbflow._version import __version__
    from nbflow.core.settings import private_files
    from nbflow.server.app import Settings
    from nbflow.server.db import normalize_url
    from nbflow.server.protocol import http_protocol

    private_files()  # the SQLite database, its WAL and the config are this user's alone
    if args.workers < 1:
        raise NbflowError(f"--workers must be 1 or more, got {args.workers}")
    url = f"http://{args.host}:{args.port}"
    database = normalize_url(args.db)
    parsed = make_url(database)
    if args.workers > 1 and parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise NbflowError("--workers needs a database the processes share: a SQLite file or PostgreSQL")
        print("note: several workers share one SQLite file; PostgreSQL suits them better", flush=True)
    # Every setting `server start` has a flag for is named alike in Settings.
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if hasattr(args, f.name)}
    # The app is made by each worker process from these (the factory below): the same way
    # for one worker as for several.
    os.environ[SETTINGS_ENV] = json.dumps({**flags, "database_url": database, "url": url})
    workers = f", {args.workers} worker processes" if args.workers > 1 else ""
    print(f"nbflow server {__version__} on {url} (database {_redacted(database)}{workers})", flush=True)
    print(f"web UI: {url}/ (sign in with an API key)", flush=True)
    # Live-feed streams never end by themselves: give them a few seconds, then close them.
    uvicorn.run(
        f"{__name__}:app_from_environment",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=3,
        # httptools with a bound on a request's head (it has none of its own), else h11.
        http=http_protocol(),
    )
    return 0


def app_from_environment() -> Starlette:
    """The server app of one worker process, from the settings ``cmd_start`` put in the
    environment (uvicorn imports and calls this in each worker)."""
    from nbflow.config import config_path, write_config
    from nbflow.server.app import Settings, create_app

    options = json.loads(os.environ[SETTINGS_ENV])
    url = options.pop("url")

    def on_bootstrap(key: str) -> None:
        # Only the process that made the database gets here: the key is shown once.
        write_config(url, key)
        print(
            "nbflow server: new database, so it made the tenant 'default' and its admin key,\n"
            f"shown once:\n\n    {key}\n\nsaved with the server URL in {config_path()} for this user's "
            "client, CLI and notebooks",
            flush=True,
        )

    return create_app(Settings(**options, on_bootstrap=on_bootstrap))


def cmd_tenants_create(args: argparse.Namespace) -> int:
    """``nbflow server tenants create NAME``."""
    from nbflow.server import auth, db

    async def create() -> str:
        engine = db.create_engine(db.normalize_url(args.db))
        try:
            async with db.startup_lock(engine):
                await db.migrate(engine)
            async with db.sessionmaker(engine).begin() as session:
                _, key = await auth.create_tenant(session, args.name)
            return key
        finally:
            await engine.dispose()

    key = asyncio.run(create())
    print(f"tenant {args.name!r} created; its admin key (shown once):\n\n    {key}\n")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """The server commands."""
    server_sub = command_group(sub, "server", "the orchestration server")
    start = server_sub.add_parser("start", help="start the server (GraphQL API, scheduler, recovery)")
    start.add_argument("--db", metavar="URL", help="database URL (default: SQLite file under NBFLOW_HOME)")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=4200)
    start.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (for a CPU-bound server; PostgreSQL recommended)",
    )
    start.add_argument("--scheduler-interval", type=float, default=10.0, metavar="SECONDS")
    start.add_argument("--heartbeat-timeout", type=float, default=60.0, metavar="SECONDS")
    start.add_argument("--submitted-timeout", type=float, default=60.0, metavar="SECONDS")
    start.add_argument("--recovery-interval", type=float, default=5.0, metavar="SECONDS")
    start.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    start.add_argument(
        "--max-body-bytes",
        type=int,
        default=4 * 1024 * 1024,
        metavar="N",
        help="largest request body accepted",
    )
    hooks = start.add_argument_group("server hooks (nbflow hooks add)")
    hooks.add_argument("--smtp-host", metavar="HOST", help="the SMTP server email hooks send through")
    hooks.add_argument("--smtp-port", type=int, default=25, metavar="PORT")
    hooks.add_argument("--smtp-from", default="nbflow@localhost", metavar="ADDRESS")
    hooks.add_argument("--hook-interval", type=float, default=2.0, metavar="SECONDS",
                       help="how often the hook loop looks for states to report")  # fmt: skip
    hooks.add_argument("--hook-retry-base", type=float, default=10.0, metavar="SECONDS",
                       help="delay before a failed delivery's first retry (doubling after)")  # fmt: skip
    start.set_defaults(handler=cmd_start)
    tenants_sub = command_group(server_sub, "tenants", "tenants of the server's database")
    create = tenants_sub.add_parser("create", help="create a tenant and print its admin key")
    create.add_argument("name")
    create.add_argument("--db", metavar="URL", help="database URL (default: SQLite file under NBFLOW_HOME)")
    create.set_defaults(handler=cmd_tenants_create)
