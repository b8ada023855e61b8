"""Chaos: PostgreSQL drops every connection of the server (a restart, a failover, a proxy's
idle timeout). The server pings a pooled connection only when it sat idle, not on every
request; a user must still never see the dropped connections."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import (  # noqa: E402
    ONE_TASK_STORAGE,
    ONE_TASK_STRUCTURE,
    AgentProcess,
    ServerProcess,
    TcpProxy,
    flow_change,
    fresh_postgres_database,
    log_line,
    postgres_url,
    run_in_own_loop,
    task_change,
    wait_for,
)

from nbflow.agent.reporter import make_sender  # noqa: E402
from nbflow.agent.spool import Spool  # noqa: E402
from nbflow.core.errors import UNAVAILABLE, APIError, TransportError  # noqa: E402
from nbflow.core.record import new_id  # noqa: E402
from nbflow.server import db  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]


def on_database(url: str, sql: str) -> list[Any]:
    """The rows of ``sql`` run on the database of ``url`` from a connection of its own."""
    parsed = make_url(url)

    async def go() -> list[Any]:
        conn = await asyncpg.connect(
            host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
        )
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return run_in_own_loop(go())


OTHER_SESSIONS = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def drop_connections(url: str) -> int:
    """Terminate every other session on the database of ``url``, as a restart would."""
    return len(on_database(url, f"SELECT pg_terminate_backend(pid) {OTHER_SESSIONS}"))


@pytest.fixture
def pg_database() -> Iterator[str]:
    base = postgres_url()
    if base is None:
        pytest.skip("set NBFLOW_TEST_POSTGRES_URL to run the PostgreSQL connection tests")
    with fresh_postgres_database(base) as url:
        yield url


@pytest.fixture
def pg_server(tmp_path: Path, pg_database: str) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, pg_database).start()
    yield server
    server.stop()


def test_requests_after_the_database_dropped_the_servers_connections_succeed(
    pg_server: ServerProcess, pg_database: str
) -> None:
    with pg_server.client() as client:
        client.register_flow("etl", ONE_TASK_STRUCTURE, ONE_TASK_STORAGE)
        client.create_flow_run(flow_name="etl")
        assert drop_connections(pg_database) >= 1
        time.sleep(db.IDLE_PING + 0.5)  # the pooled connections are now idle long enough to be checked
        made = [client.create_flow_run(flow_name="etl") for _ in range(3)]
        assert [run.state for run in made] == ["Scheduled"] * 3
        assert client.flow_runs(flow_name="etl")[1] == 4


def test_a_pooled_connection_the_database_closed_is_replaced(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "IDLE_PING", 0.0)  # every checkout counts as after an idle spell

    async def go() -> list[int]:
        engine = db.create_engine(pg_database)
        try:
            seen = []
            for _ in range(3):
                async with engine.connect() as conn:
                    seen.append((await conn.execute(text("SELECT 1"))).scalar_one())
                await asyncio.to_thread(drop_connections, pg_database)
            return seen
        finally:
            await engine.dispose()

    assert run_in_own_loop(go()) == [1, 1, 1]


def backends_of(url: str) -> int:
    """How many sessions other than this one are open on the database of ``url``."""
    return int(on_database(url, f"SELECT count(*) {OTHER_SESSIONS}")[0][0])


def test_a_busy_server_hands_no_dropped_connection_to_a_request(
    pg_server: ServerProcess, pg_database: str
) -> None:
    """A failover while the server is busy: every pooled connection, the engine's and the
    driver's, was used a moment ago, so none is pinged as idle. None may reach a request."""
    with pg_server.client() as client:
        client.register_flow("etl", ONE_TASK_STRUCTURE, ONE_TASK_STORAGE)
        run = client.create_flow_run(flow_name="etl")

    def busy(worker: int) -> int:
        with pg_server.client() as client:
            for seq in range(3):
                client.create_flow_run(flow_name="etl")
                [answer] = client.set_task_run_states([task_change(run.id, new_id(), "a", "Running")])
                assert answer.ok, answer.message
                assert client.write_run_logs([log_line(run.id, worker * 100 + seq, "busy")]) == 1
        return worker

    with ThreadPoolExecutor(8) as pool:  # eight requests at once: several connections in each pool
        assert sorted(pool.map(busy, range(8))) == list(range(8))
    assert drop_connections(pg_database) >= 4
    deadline = time.monotonic() + 10
    while backends_of(pg_database) and time.monotonic() < deadline:  # the sessions end
        time.sleep(0.05)
    time.sleep(0.2)  # the server's loop hears its connections close

    failures = []
    with pg_server.client() as client:
        for seq in range(10):
            try:
                [answer] = client.set_task_run_states([task_change(run.id, new_id(), "a", "Running")])
                assert answer.ok, answer.message
                assert client.write_run_logs([log_line(run.id, 1000 + seq, "after")]) == 1
                client.create_flow_run(flow_name="etl")
                client.flow_runs(flow_name="etl")
            except Exception as exc:  # what a user would see
                failures.append(f"request {seq}: {exc}")
    assert not failures, "\n".join(failures)
    log = pg_server.log_path.read_text()
    assert "connection is closed" not in log, log[-3000:]


def test_a_database_outage_is_said_as_such_and_an_agents_records_wait_in_its_spool(
    tmp_path: Path, pg_database: str
) -> None:
    """The database goes away (a proxy between the server and PostgreSQL resets every
    connection and refuses new ones), then comes back. Meanwhile a user is told the database
    is unavailable, not "internal error"; an agent's spool keeps what it could not deliver, and
    delivers all of it afterwards: nothing is lost, nothing is stored twice."""
    parsed = make_url(pg_database)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
    through_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    server = ServerProcess(tmp_path / "server", through_proxy).start()
    try:
        with server.client() as client:
            client.register_flow("etl", ONE_TASK_STRUCTURE, ONE_TASK_STORAGE)
            run = client.create_flow_run(flow_name="etl")
            spool = Spool(run.id, 0, tmp_path / "spool")
            tasks = [new_id() for _ in range(3)]
            spool.append(
                [task_change(run.id, t, "a", state) for t in tasks for state in ("Running", "Success")]
            )
            spool.append([log_line(run.id, seq, f"line {seq}") for seq in range(5)])
            send = make_sender(client)
            unused_key = client.create_api_key("read-only").key  # never seen: checked in the database

            proxy.cut()
            with server.client(unused_key) as stranger, pytest.raises(APIError) as refused:
                stranger.flow_runs(flow_name="etl")
            assert refused.value.code == UNAVAILABLE, refused.value.errors
            with pytest.raises(APIError) as told:
                client.create_flow_run(flow_name="etl")
            assert told.value.code == UNAVAILABLE, told.value.errors
            assert "could not reach its database" in str(told.value)
            with pytest.raises(TransportError, match="could not reach its database"):
                spool.deliver(send)
            assert len(spool.pending()) == 11, "the spool lost records during the outage"

            proxy.restore()
            wait_for(lambda: _delivered(spool, send), timeout=30, what="the spool to be delivered")
            rows = client.flow_run(run.id).task_runs
            assert sorted(r.id for r in rows) == sorted(tasks) and {r.state for r in rows} == {"Success"}
            assert [line["message"] for line in client.run_logs(run.id)] == [
                f"line {seq}" for seq in range(5)
            ]
            assert client.create_flow_run(flow_name="etl").state == "Scheduled"
        log = server.log_path.read_text()
        assert "a request found the database unavailable" in log, log[-3000:]
    finally:
        server.stop()
        proxy.stop()


def _delivered(spool: Spool, send: Any) -> bool:
    try:
        spool.deliver(send)
    except TransportError:
        return False
    return spool.done()


def test_after_a_database_outage_running_runs_get_a_heartbeat_timeout_to_check_in(
    tmp_path: Path, pg_database: str
) -> None:
    """While the database is away no heartbeat can be stored, so when it comes back every
    running run's last heartbeat looks old. Recovery must give the agents one heartbeat timeout
    to check in again (as after the server's own start), not fail their runs at its first pass."""
    parsed = make_url(pg_database)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
    through_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    timeout = 2.0
    server = ServerProcess(
        tmp_path / "server", through_proxy, heartbeat_timeout=timeout, submitted_timeout=timeout,
        recovery_interval=0.2,
    ).start()  # fmt: skip
    beating, stopped = threading.Event(), threading.Event()
    try:
        with server.client() as client:
            client.register_flow("etl", ONE_TASK_STRUCTURE, ONE_TASK_STORAGE)
            run = client.create_flow_run(flow_name="etl")
            (claim,) = client.set_flow_run_states([flow_change(run.id, "Submitted", run.version)])
            (running,) = client.set_flow_run_states([flow_change(run.id, "Running", claim.version)])
            assert running.ok, running.error

            def agent() -> None:  # beats every 0.5 s while it can reach the server's database
                with server.client() as own:
                    while not stopped.wait(0.5):
                        if beating.is_set():
                            own.heartbeat([run.id])

            beating.set()
            threading.Thread(target=agent, daemon=True).start()
            time.sleep(timeout + 0.5)  # past the server's own grace after its start
            assert client.flow_run(run.id).state == "Running"
            beating.clear()
            proxy.cut()
            time.sleep(timeout + 1.5)  # longer than a heartbeat timeout
            proxy.restore()
            time.sleep(0.6)  # recovery has looked (every 0.2 s) before the agent's next beat
            beating.set()
            time.sleep(timeout)
            assert client.flow_run(run.id).state == "Running", server.log_path.read_text()[-2000:]
    finally:
        stopped.set()
        server.stop()
        proxy.stop()


CHATTY = """%%task chatty
import time
for i in range(16):
    print(f"tick {i}", flush=True)
    time.sleep(0.5)
ticks = 16"""


def test_an_agent_and_its_run_live_through_a_database_outage(tmp_path: Path, pg_database: str) -> None:
    """The database goes away for longer than a heartbeat timeout while an agent runs a flow,
    then comes back. The agent keeps polling, the run ends Success, and every line it printed
    is stored once: nothing is lost, nothing doubled."""
    parsed = make_url(pg_database)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
    through_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    server = ServerProcess(
        tmp_path / "server", through_proxy, heartbeat_timeout=3, submitted_timeout=3
    ).start()
    agent = None
    try:
        server.cli("register", str(write_notebook(tmp_path / "chatty.ipynb", [CHATTY])))
        with server.client() as client:
            agent = AgentProcess(server, client.create_api_key("agent").key, concurrency=2).start()
            run = client.create_flow_run(flow_name="chatty")
            wait_for(lambda: client.flow_run(run.id).state == "Running", timeout=30, what="the run to start")
            time.sleep(1.0)
            proxy.cut()
            time.sleep(4.0)  # longer than the heartbeat timeout
            proxy.restore()

            def ended() -> Any:
                current = client.flow_run(run.id)
                return current if current.state not in ("Scheduled", "Submitted", "Running") else None

            final = wait_for(ended, timeout=60, what="the run to end")
            assert final.state == "Success", (final.message, agent.log()[-3000:])
            assert agent.proc is not None and agent.proc.poll() is None, agent.log()[-3000:]
            ticks = [
                line["message"] for line in client.run_logs(run.id) if line["message"].startswith("tick")
            ]
            assert ticks == [f"tick {i}" for i in range(16)], ticks
            again = client.create_flow_run(flow_name="chatty")  # the agent still takes work
            wait_for(
                lambda: client.flow_run(again.id).state != "Scheduled", timeout=30, what="the next claim"
            )
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        proxy.stop()


def test_the_live_feed_stays_open_through_a_database_outage(tmp_path: Path, pg_database: str) -> None:
    """A stream of the live feed that is open when the database goes away stays open and goes
    on from its cursor when it comes back; one opened meanwhile is told the database is
    unavailable (503), never a bare 500."""
    parsed = make_url(pg_database)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
    through_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    server = ServerProcess(tmp_path / "server", through_proxy).start()
    seen: list[str] = []
    try:
        with server.client() as client:
            client.register_flow("etl", ONE_TASK_STRUCTURE, ONE_TASK_STORAGE)
            run = client.create_flow_run(flow_name="etl")

            def watch() -> None:  # one stream, read to its end
                with server.client() as reader:
                    for _, batch in reader.events(flow_run_id=run.id, from_start=True):
                        seen.extend(event["message"] for event in batch if event["kind"] == "log")
                        if "after" in seen:
                            return

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            assert client.write_run_logs([log_line(run.id, 0, "before")]) == 1
            wait_for(lambda: "before" in seen, timeout=15, what="the line before the outage")

            proxy.cut()
            with server.client() as late, pytest.raises(APIError) as told:
                next(iter(late.events(flow_run_id=run.id)))
            assert told.value.code == UNAVAILABLE, told.value.errors
            time.sleep(2.5)
            assert watcher.is_alive(), "the open stream ended during the outage"
            proxy.restore()

            wait_for(lambda: _wrote(client, run.id), timeout=15, what="a line after the outage")
            wait_for(lambda: "after" in seen, timeout=15, what="the open stream to deliver it")
            watcher.join(5)
        assert seen == ["before", "after"], seen
    finally:
        server.stop()
        proxy.stop()


def _wrote(client: Any, run_id: str) -> bool:
    try:
        return client.write_run_logs([log_line(run_id, 1, "after")]) in (0, 1)
    except APIError:
        return False
