"""Real nbflow server processes for tests: SQLite files or fresh PostgreSQL databases."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from nbflow.core.record import LogRecord, StateRecord, new_id
from nbflow.core.states import FINISHED_TYPES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

# The state names a finished run can have, from the engine's own definition.
FINISHED = frozenset(t.value for t in FINISHED_TYPES)

# A registered flow's structure as the API takes it: two tasks, one edge, one parameter.
ETL_STRUCTURE: dict[str, Any] = {
    "name": "etl",
    "tasks": [{"slug": "extract"}, {"slug": "load"}],
    "edges": [{"upstream": "extract", "downstream": "load", "key": "rows"}],
    "parameters": [{"name": "day", "default": "2024-01-01", "required": False}],
}
# The smallest structure with a parameter, and a storage reference the server accepts.
ONE_TASK_STRUCTURE: dict[str, Any] = {
    "name": "etl",
    "tasks": [{"slug": "a", "name": "a"}],
    "edges": [],
    "parameters": [{"name": "p", "default": 1}],
}
ONE_TASK_STORAGE = {"kind": "local", "location": "/tmp/etl.py", "sha256": "0" * 64}


def flow_change(
    run_id: str, state: str, version: int, *, agent_id: str | None = None, previous: str | None = None
) -> dict[str, Any]:
    """A flow-run state change as a client sends it: the record's wire form plus the version."""
    record = StateRecord(
        flow_run_id=run_id, state=state, transition_id=new_id(), timestamp=time.time(), previous=previous
    )
    return {**record.to_wire(), "version": version, "agent_id": agent_id}


def task_change(
    run_id: str,
    task_run_id: str,
    task: str,
    state: str,
    *,
    attempt: int = 0,
    execution: int = 0,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """A task-run state change in wire form (a fresh transition id)."""
    return StateRecord(
        flow_run_id=run_id, state=state, transition_id=new_id(), timestamp=timestamp or time.time(),
        task_run_id=task_run_id, task=task, attempt=attempt, execution=execution,
    ).to_wire()  # fmt: skip


def log_line(
    run_id: str, seq: int, message: str, *, level: str = "INFO", task: str | None = None, execution: int = 0
) -> dict[str, Any]:
    """A log line in wire form."""
    return LogRecord(
        flow_run_id=run_id, level=level, message=message, timestamp=1000.0 + seq, task=task,
        execution=execution, seq=seq,
    ).to_wire()  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_url() -> str | None:
    return os.environ.get("NBFLOW_TEST_POSTGRES_URL") or None


@contextmanager
def fresh_postgres_database(server_url: str | None = None) -> Iterator[str]:
    """A new empty database on the test PostgreSQL server (or beside ``server_url``), dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(server_url or postgres_url() or "")
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"nbflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name, drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ServerProcess:
    """``nbflow server start`` in a subprocess, on a free loopback port."""

    def __init__(self, home: Path, database_url: str, **options: float) -> None:
        self.home = home
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.options = {"scheduler_interval": 0.5, "recovery_interval": 0.5, **options}
        self.proc: subprocess.Popen[str] | None = None
        self.admin_key: str | None = None
        self.log_path = home / f"server-{self.port}.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "NBFLOW_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    def start(self, timeout: float = 30) -> ServerProcess:
        args = [
            sys.executable,
            "-m",
            "nbflow.cli",
            "server",
            "start",
            "--db",
            self.database_url,
            "--port",
            str(self.port),
        ]
        for name, value in self.options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start in {timeout}s:\n{self.log_path.read_text()}")
        match = re.search(r"^\s+(nbf_\S+)$", self.log_path.read_text(), re.MULTILINE)
        if match and self.admin_key is None:
            self.admin_key = match.group(1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def finished(self, run_id: str):  # type: ignore[no-untyped-def]
        """The run if it has finished (for ``wait_for``), else None."""
        with self.client() as client:
            run = client.flow_run(run_id)
        return run if run.state in FINISHED else None

    def client(self, key: str | None = None):  # type: ignore[no-untyped-def]
        from nbflow.client import Client

        return Client(self.url, key or self.admin_key, retries=0)

    def cli(self, *args: str, key: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.env(), "NBFLOW_API_URL": self.url, "NBFLOW_API_KEY": key or self.admin_key or ""}
        done = subprocess.run(
            [sys.executable, "-m", "nbflow.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"nbflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done


class AgentProcess:
    """``nbflow agent start`` in a subprocess."""

    def __init__(
        self,
        server: ServerProcess,
        key: str,
        *,
        labels: str = "",
        concurrency: int = 4,
        name: str = "",
        extra: tuple[str, ...] = (),
        home: Path | None = None,
    ) -> None:
        self.server = server
        self.home = home  # its own NBFLOW_HOME (another machine), or the server's
        self.key = key
        self.labels = labels
        self.extra = extra
        self.concurrency = concurrency
        self.name = name or f"agent-{uuid.uuid4().hex[:6]}"
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = server.home / f"{self.name}.log"

    def start(self) -> AgentProcess:
        args = [
            sys.executable, "-m", "nbflow.cli", "agent", "start", "--server", self.server.url, "--key", self.key,
            "--concurrency", str(self.concurrency), "--name", self.name, "--poll-wait", "1", "--heartbeat-interval", "0.5",
        ]  # fmt: skip
        if self.labels:
            args += ["--labels", self.labels]
        args += list(self.extra)
        env = {**self.server.env(), **({"NBFLOW_HOME": str(self.home)} if self.home else {})}
        self.proc = subprocess.Popen(
            args, env=env, stdout=self.log_path.open("a"), stderr=subprocess.STDOUT, text=True
        )
        deadline = time.time() + 20
        while "polling" not in (self.log_path.read_text() if self.log_path.exists() else ""):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"agent did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def tree(self) -> list[int]:
        """The agent's pid and its flow processes' (children, grandchildren)."""
        assert self.proc is not None
        pids, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            children = Path(f"/proc/{pid}/task/{pid}/children")
            if children.exists():
                todo += [int(c) for c in children.read_text().split()]
        return pids

    def pause(self) -> list[int]:
        """SIGSTOP the agent and its flow processes (a frozen machine); the pids stopped."""
        pids = self.tree()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    @staticmethod
    def resume(pids: list[int]) -> None:
        """SIGCONT what ``pause`` stopped."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sqlite_server(home: Path, folder: Path, **options: float) -> Iterator[ServerProcess]:
    """A started server on a SQLite file under ``folder``, stopped afterwards (for fixtures)."""
    proc = ServerProcess(home, f"sqlite+aiosqlite:///{folder / 'server' / 'nbflow.db'}", **options).start()
    yield proc
    proc.stop()


def agent_key(server: ServerProcess) -> str:
    """A new key with the agent role on ``server``."""
    with server.client() as client:
        return client.create_api_key("agent").key


async def team_database(folder: Path) -> tuple[Any, Any, str]:
    """An in-process server database on a SQLite file in ``folder``, migrated, with one tenant
    ("team"): (engine, sessions, tenant id), for tests of the services without a server."""
    from nbflow.server import auth, db

    engine = db.create_engine(f"sqlite+aiosqlite:///{folder / 'nbflow.db'}")
    await db.migrate(engine)
    sessions = db.sessionmaker(engine)
    async with sessions.begin() as session:
        tenant, _ = await auth.create_tenant(session, "team")
    return engine, sessions, tenant.id


def run_in_own_loop(coroutine: Any) -> Any:
    """``asyncio.run`` in a thread of its own: the browser tests' Playwright (sync API) keeps an
    event loop running in the main thread for the rest of the session, where asyncio.run()
    would refuse to start."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def on_postgres(test: Callable[[str], Awaitable[Any]]) -> Any:
    """Run ``test(url)`` on a fresh PostgreSQL database, in a loop of its own; the test is skipped,
    saying why, when no PostgreSQL server is configured."""
    import pytest

    if not postgres_url():
        pytest.skip(
            "NBFLOW_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    with fresh_postgres_database() as url:
        return run_in_own_loop(test(url))


class TcpProxy:
    """A TCP proxy from a free loopback port to ``host:port``, in a thread of its own, that a
    test can ``cut`` (every connection through it reset, new ones refused: a database restart,
    a failover or a network fault as the server sees it) and ``restore``."""

    def __init__(self, host: str, port: int) -> None:
        import asyncio
        import threading

        self.target = (host, port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self._open: set[Any] = set()

    def start(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def _call(self, coroutine: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        import asyncio

        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: Any, writer: Any) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))

        async def pipe(source: Any, sink: Any) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._open.difference_update((writer, up_writer))

    async def _cut(self) -> None:
        import asyncio

        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        if server is not None:  # on 3.12+ this waits for the connections' handlers too
            await asyncio.wait_for(server.wait_closed(), 5)

    def cut(self) -> None:
        """Reset every connection through the proxy and refuse new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Take connections again."""
        self._call(self._listen())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class ClaimedRun:
    """A tenant with one run claimed by an agent (the run's execution is 2), on a database of
    its own engine: what a test of the write path starts from."""

    def __init__(self, sessions: Any, tenant_id: str, run_id: str) -> None:
        self.sessions = sessions
        self.tenant_id = tenant_id
        self.run_id = run_id

    def change(self, task_run_id: str, state: str, **fields: Any) -> StateRecord:
        """A task-run change of the owning execution unless told otherwise."""
        return StateRecord(
            flow_run_id=self.run_id, task_run_id=task_run_id, task="a", state=state,
            transition_id=fields.pop("transition_id", new_id()), timestamp=time.time(),
            execution=fields.pop("execution", 2), **fields,
        )  # fmt: skip

    def elsewhere(self, url: str) -> ClaimedRun:
        """The same run seen through an engine of its own, as another server process sees it."""
        from nbflow.server import db

        return ClaimedRun(db.sessionmaker(db.create_engine(url)), self.tenant_id, self.run_id)


async def claimed_run(url: str, tenant: str = "team") -> ClaimedRun:
    """Migrate the database at ``url``, then make a tenant, a one-task flow and a run of it,
    and claim the run."""
    from nbflow.server import auth, db
    from nbflow.server.services.flows import FlowSpec, register_flow
    from nbflow.server.services.runs import create_flow_run
    from nbflow.server.services.transitions import set_flow_run_state

    engine = db.create_engine(url)
    await db.migrate(engine)
    sessions = db.sessionmaker(engine)
    async with sessions.begin() as session:
        made, _ = await auth.create_tenant(session, tenant)
        spec = FlowSpec("one", {**ONE_TASK_STRUCTURE, "name": "one"}, None, [], ONE_TASK_STORAGE)
        flow, _, _ = await register_flow(session, made.id, spec)
        run, _ = await create_flow_run(session, made.id, flow)
    async with sessions.begin() as session:
        claim = StateRecord(
            flow_run_id=run.id, state="Submitted", transition_id=new_id(), timestamp=time.time()
        )
        assert (await set_flow_run_state(session, made.id, claim, version=run.version)).ok
    return ClaimedRun(sessions, made.id, run.id)


def sql_literal(value: Any) -> str:
    """``value`` as an SQL literal that EXECUTE coerces to its parameter's type."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else repr(value)
    if isinstance(value, list):

        def element(item: Any) -> str:
            return "NULL" if item is None else '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'

        value = "{" + ",".join(element(item) for item in value) + "}"
    return "'" + str(value).replace("'", "''") + "'"


async def cached_plan(driver: Any, sql: str, args: Any, options: str = "") -> str:
    """The plan ``driver``'s connection keeps for ``sql`` (its prepared statement), run with
    ``args`` written as literals (EXECUTE takes no parameters of its own)."""
    name = await driver.fetchval("SELECT name FROM pg_prepared_statements WHERE statement = $1", sql)
    plan = await driver.fetch(f"EXPLAIN {options}EXECUTE {name}({', '.join(sql_literal(a) for a in args)})")
    return "\n".join(row[0] for row in plan)
