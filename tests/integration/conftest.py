from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from typing import TYPE_CHECKING

from server_helpers import ServerProcess, fresh_postgres_database, postgres_url, sqlite_server  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each server test runs on SQLite and on PostgreSQL (a fresh database each time)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'server' / 'nbflow.db'}"
        return
    if not postgres_url():
        pytest.skip(
            "NBFLOW_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def server(database_url: str, nbflow_home: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(nbflow_home, database_url).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def sqlite_agent_server(nbflow_home: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """A SQLite server that gives up on a silent agent's run after 3 s (agent tests kill agents)."""
    yield from sqlite_server(nbflow_home, tmp_path, heartbeat_timeout=3, submitted_timeout=3)
