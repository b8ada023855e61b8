"""``nbflow server start`` and ``nbflow server tenants create``."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from nbflow.commands.common import command_group

if TYPE_CHECKING:
    import argparse


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def cmd_start(args: argparse.Namespace) -> int:
    """``nbflow server start``."""
    import uvicorn

    from nbflow._version import __version__
    from nbflow.config import config_path, write_config
    from nbflow.core.settings import private_files
    from nbflow.server.app import Settings, create_app
    from nbflow.server.db import normalize_url

    private_files()  # the SQLite database, its WAL and the config are this user's alone
    url = f"http://{args.host}:{args.port}"
    database = normalize_url(args.db)

    def on_bootstrap(key: str) -> None:
        write_config(url, key)
        print(
            "nbflow server: new database, so it made the tenant 'default' and its admin key,\n"
            f"shown once:\n\n    {key}\n\nsaved with the server URL in {config_path()} for this user's "
            "client, CLI and notebooks",
            flush=True,
        )

    # Every setting `server start` has a flag for is named alike in Settings.
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if hasattr(args, f.name)}
    settings = Settings(**flags, database_url=database, on_bootstrap=on_bootstrap)
    print(f"nbflow server {__version__} on {url} (database {_redacted(database)})", flush=True)
    print(f"web UI: {url}/ (sign in with an API key)", flush=True)
    # Live-feed streams never end by themselves: give them a few seconds, then close them.
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=3,
    )
    return 0


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
