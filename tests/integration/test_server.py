"""The server against a real uvicorn process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import DF_CELLS, write_notebook  # noqa: E402
from server_helpers import ETL_STRUCTURE as STRUCTURE  # noqa: E402
from server_helpers import ServerProcess, flow_change, log_line, task_change

from nbflow.core.errors import APIError  # noqa: E402

pytestmark = pytest.mark.integration

STORAGE = {"kind": "local", "location": "/srv/flows/etl.py", "sha256": "a" * 64}


def register(client, name: str = "etl", **kwargs):  # type: ignore[no-untyped-def]
    return client.register_flow(name, {**STRUCTURE, "name": name}, STORAGE, **kwargs)


def test_register_create_runs_and_idempotency(server: ServerProcess) -> None:
    with server.client() as client:
        first = register(client)
        again = register(client)
        assert first.created and not again.created
        assert (again.flow_id, again.version) == (first.flow_id, 1)
        changed = client.register_flow(
            "etl", {**STRUCTURE, "tasks": [*STRUCTURE["tasks"], {"slug": "report"}]}, STORAGE
        )
        assert changed.created and changed.version == 2 and changed.flow_id == first.flow_id

        run = client.create_flow_run(flow_name="etl", parameters={"day": "2024-03-01"}, idempotency_key="k-1")
        retried = client.create_flow_run(
            flow_name="etl", parameters={"day": "2024-03-01"}, idempotency_key="k-1"
        )
        assert run.created and not retried.created and retried.id == run.id
        assert run.state == "Scheduled" and run.parameters == {"day": "2024-03-01"} and run.flow_version == 2
        with pytest.raises(APIError, match="unknown parameter 'dya'; this flow's parameters are: day"):
            client.create_flow_run(flow_name="etl", parameters={"dya": "x"})
        with pytest.raises(APIError, match="no flow 'nope' in this tenant"):
            client.create_flow_run(flow_name="nope")


def test_state_updates_with_a_version_conflict(server: ServerProcess) -> None:
    with server.client() as client:
        register(client)
        run = client.create_flow_run(flow_name="etl")
        # Two agents claim the same run with the same version: exactly one wins.
        results: list = []
        barrier = threading.Barrier(2)

        def claim(agent: str) -> None:
            with server.client() as c:
                barrier.wait()
                results.extend(
                    c.set_flow_run_states([flow_change(run.id, "Submitted", run.version, agent_id=agent)])
                )

        threads = [threading.Thread(target=claim, args=(a,)) for a in ("agent-a", "agent-b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.ok for r in results) == [False, True]
        loser = next(r for r in results if not r.ok)
        assert "stale version 1" in loser.error
        winner = next(r for r in results if r.ok)
        assert winner.version == 2
        # An illegal transition is refused with both states named; an unknown state is an error.
        with pytest.raises(APIError, match="unknown state 'Done'"):
            client.set_flow_run_states([flow_change(run.id, "Done", 2)])
        skip = client.set_flow_run_states([flow_change(run.id, "Success", 2)])
        assert skip[0].error == "a flow run cannot go from Submitted to Success"
        running = flow_change(run.id, "Running", 2)
        ok = client.set_flow_run_states([running])
        assert ok[0].ok and ok[0].version == 3
        # The same change delivered again (its answer was lost) is acknowledged, not applied twice.
        again = client.set_flow_run_states([running])
        assert again[0].ok and again[0].version == 3
        # Task states carry the execution the claim made (version 2): records of another are refused.
        task_updates = [
            task_change(run.id, "t-1", "extract", "Running", attempt=1, execution=2),
            task_change(run.id, "t-1", "extract", "Success", attempt=1, execution=2),
        ]
        assert [r.ok for r in client.set_task_run_states(task_updates)] == [True, True]
        # The same batch delivered again (a retried request) is acknowledged, not applied twice.
        redelivered = client.set_task_run_states(task_updates[1:])
        assert redelivered[0].ok and redelivered[0].version == 2
        late = client.set_task_run_states([task_change(run.id, "t-1", "extract", "Failed", execution=2)])
        assert not late[0].ok and late[0].error == "a task run cannot go from Success to Failed"
        zombie = client.set_task_run_states([task_change(run.id, "t-2", "load", "Running", execution=1)])
        assert not zombie[0].ok and "superseded execution" in zombie[0].error
        # What an agent asks for: only the refusals (none, when all were taken).
        mixed = [
            task_change(run.id, "t-3", "load", "Running", execution=2),
            task_change(run.id, "t-4", "load", "Running", execution=1),
            task_change(run.id, "t-5", "load", "Running", execution=2),
        ]
        (refused,) = client.set_task_run_states(mixed, refused_only=True)
        assert refused.id == "t-4" and not refused.ok and "superseded execution" in (refused.error or "")
        assert client.set_task_run_states(mixed[2:], refused_only=True) == []  # re-delivered: taken
        assert [t.task_slug for t in client.flow_run(run.id).task_runs].count("load") == 2
        shown = client.flow_run(run.id)
        assert shown.state == "Running"
        assert [(t.task_slug, t.state, t.version) for t in shown.task_runs if t.task_slug == "extract"] == [
            ("extract", "Success", 2)
        ]


def test_logs_are_written_once_and_read_in_order(server: ServerProcess) -> None:
    with server.client() as client:
        register(client)
        run = client.create_flow_run(flow_name="etl")
        lines = [log_line(run.id, i, f"line {i}", task="extract") for i in range(1, 301)]
        assert client.write_run_logs(lines) == 300
        assert client.write_run_logs(lines[250:]) == 0  # re-delivered: ignored
        logs = client.run_logs(run.id, limit=1000)
        assert [entry["message"] for entry in logs] == [f"line {i}" for i in range(1, 301)]
        with pytest.raises(APIError, match="log line: unknown level 'LOUD'"):
            client.write_run_logs([{**lines[0], "seq": 999, "level": "LOUD"}])
        assert len(client.run_logs(run.id, limit=1000)) == 300  # nothing of the bad batch was written


def test_pagination_and_filters(server: ServerProcess) -> None:
    with server.client() as client:
        register(client)
        register(client, "other")
        base = datetime(2024, 1, 1, tzinfo=UTC)
        for i in range(25):
            client.create_flow_run(flow_name="etl", scheduled_start_time=base + timedelta(hours=i))
        client.create_flow_run(flow_name="other")
        seen = []
        offset = 0
        while True:
            page, total = client.flow_runs(flow_name="etl", limit=10, offset=offset)
            seen += page
            assert total == 25
            offset += len(page)
            if offset >= total:
                break
        assert len({r.id for r in seen}) == 25
        assert [r.scheduled_start_time for r in seen] == sorted(
            (r.scheduled_start_time for r in seen), reverse=True
        )
        window, total = client.flow_runs(
            flow_name="etl",
            scheduled_after=base + timedelta(hours=5),
            scheduled_before=base + timedelta(hours=8),
        )
        assert total == 3
        scheduled, total = client.flow_runs(states=["Scheduled"], limit=100)
        assert total == 26
        assert client.flow_runs(states=["Failed"])[1] == 0


KEYSET_PAGE = """query($after: String) { flowRuns(flowName: "etl", limit: 10, after: $after) {
    total nextCursor items { id scheduledStartTime } } }"""


def test_pages_by_key_stay_put_when_newer_runs_arrive(server: ServerProcess) -> None:
    with server.client() as client:
        register(client)
        base = datetime(2024, 1, 1, tzinfo=UTC)
        for i in range(25):  # pairs share a scheduled time: the id breaks the tie
            client.create_flow_run(flow_name="etl", scheduled_start_time=base + timedelta(hours=i // 2))
        by_offset, _ = client.flow_runs(flow_name="etl", limit=100)
        seen: list[str] = []
        after = None
        while True:
            page = client.graphql(KEYSET_PAGE, {"after": after})["flowRuns"]
            seen += [r["id"] for r in page["items"]]
            if len(seen) == 10:  # a newer run between two pages shifts offsets, never keys
                client.create_flow_run(flow_name="etl", scheduled_start_time=base + timedelta(days=30))
            after = page["nextCursor"]
            if after is None:
                break
        assert seen == [r.id for r in by_offset]  # every run once, in the same order as by offset
        assert page["total"] == 26 and len(page["items"]) == 5
        with pytest.raises(APIError, match="after: 'yesterday' is not a cursor"):
            client.graphql(KEYSET_PAGE, {"after": "yesterday"})


def test_scheduler_keeps_the_next_10_runs_and_stops_when_turned_off(server: ServerProcess) -> None:
    with server.client() as client:
        registered = register(client, schedule={"type": "interval", "interval": 3600})
        deadline = time.time() + 10
        while time.time() < deadline and client.flow_runs(flow_name="etl")[1] < 10:
            time.sleep(0.2)
        runs, total = client.flow_runs(flow_name="etl", limit=50)
        assert total == 10
        times = sorted(r.scheduled_start_time for r in runs)
        assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:], strict=False))
        assert times[0] > datetime.now(UTC)
        time.sleep(1.2)  # a few more scheduler passes make no duplicates
        assert client.flow_runs(flow_name="etl")[1] == 10
        client.set_schedule_active(registered.flow_id, False)
        assert client.flow_runs(flow_name="etl")[1] == 0
        time.sleep(1.2)
        assert client.flow_runs(flow_name="etl")[1] == 0
        client.set_schedule_active(registered.flow_id, True)
        deadline = time.time() + 10
        while time.time() < deadline and client.flow_runs(flow_name="etl")[1] < 10:
            time.sleep(0.2)
        assert client.flow_runs(flow_name="etl")[1] == 10


def test_invalid_cron_is_refused_and_nothing_is_written(server: ServerProcess) -> None:
    with server.client() as client:
        with pytest.raises(APIError, match="invalid schedule: invalid cron string '0 25 \\* \\* \\*'"):
            register(client, schedule={"type": "cron", "cron": "0 25 * * *"})
        assert client.flows() == []


def test_backfill_creates_one_run_per_day(server: ServerProcess, tmp_path: Path) -> None:
    from notebook_helpers import Kernel

    kernel = Kernel()
    try:
        kernel.run("%load_ext nbflow\n%flow name daily")
        kernel.run("%%params\nday = '2024-01-01'")
        kernel.run("%%task --no-run\nreport = f'report for {day}'")
        kernel.run(
            f"%flow backfill -p day=2024-01-01..2024-01-07 --server {server.url} --key {server.admin_key}"
        )
    finally:
        kernel.close()
    with server.client() as client:
        runs, total = client.flow_runs(flow_name="daily", limit=50)
    assert total == 7
    assert sorted(r.parameters["day"] for r in runs) == [f"2024-01-0{d}" for d in range(1, 8)]


def test_live_feed_streams_states_and_logs(server: ServerProcess) -> None:
    with server.client() as client:
        register(client)
        run = client.create_flow_run(flow_name="etl")
        received: list[dict] = []

        def listen() -> None:
            with httpx.stream(
                "GET", f"{server.url}/events", params={"flow_run_id": run.id, "from": "start"},
                headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=10,
            ) as response:  # fmt: skip
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        received.extend(json.loads(line[6:]))
                    if any(e.get("kind") == "log" for e in received):
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.5)
        client.set_task_run_states([task_change(run.id, "t", "extract", "Running")])
        client.write_run_logs([log_line(run.id, 1, "hello", task="extract")])
        listener.join(10)
    kinds = [(e["kind"], e.get("task"), e.get("state") or e.get("message")) for e in received]
    assert ("state", None, "Scheduled") in kinds
    assert ("state", "extract", "Running") in kinds
    assert ("log", "extract", "hello") in kinds


def test_server_restart_keeps_everything(server: ServerProcess) -> None:
    with server.client() as client:
        register(client)
        run = client.create_flow_run(flow_name="etl")
    server.stop()
    server.start()
    with server.client() as client:
        assert client.flow_run(run.id).state == "Scheduled"
        assert len(client.flows()) == 1


def test_cli_json_output_and_errors(server: ServerProcess, tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "frames.ipynb", DF_CELLS)
    done = server.cli("register", str(notebook), "--schedule-cron", "0 6 * * *", "--json")
    registered = json.loads(done.stdout)
    assert registered["name"] == "frames" and registered["version"] == 1
    flows = json.loads(server.cli("flows", "list", "--json").stdout)
    assert [f["name"] for f in flows] == ["frames"]
    created = json.loads(server.cli("runs", "create", "frames", "--json").stdout)
    shown = json.loads(server.cli("runs", "show", created["id"], "--json").stdout)
    assert shown["run"]["state"] == "Scheduled"
    listed = json.loads(
        server.cli("runs", "list", "--flow", "frames", "--state", "Scheduled", "--json").stdout
    )
    assert listed["total"] >= 1
    bad = server.cli("runs", "show", "no-such-run", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "nbflow runs: no flow run 'no-such-run' in this tenant"


@pytest.mark.postgres
def test_two_server_processes_on_one_postgres_make_no_duplicate_runs(nbflow_home: Path) -> None:
    from collections import Counter

    from server_helpers import fresh_postgres_database, postgres_url

    if not postgres_url():
        pytest.skip(
            "NBFLOW_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    with fresh_postgres_database() as url:
        first = ServerProcess(nbflow_home / "a", url, scheduler_interval=0.1).start()
        second = ServerProcess(nbflow_home / "b", url, scheduler_interval=0.1)
        second.admin_key = first.admin_key  # same database, same tenant
        second.start()
        try:
            assert second.admin_key == first.admin_key
            with first.client() as client:
                # Every 2 seconds: while the test watches, both replicas keep adding the new "next" runs.
                register(client, schedule={"type": "interval", "interval": 2})
            time.sleep(5)
            with second.client() as client:
                runs, total = client.flow_runs(flow_name="etl", limit=1000)
        finally:
            first.stop()
            second.stop()
    counts = Counter(r.scheduled_start_time for r in runs)
    assert total >= 12  # time moved on, new runs were added ...
    assert max(counts.values()) == 1  # ... and none twice
    upcoming = [t for t in counts if t > datetime.now(UTC)]
    assert 9 <= len(upcoming) <= 10


def test_cli_lists_every_subcommand_and_stops_quietly_on_a_closed_pipe(
    server: ServerProcess, tmp_path: Path
) -> None:
    runs_help = server.cli("runs", "--help").stdout
    for command in ("list", "create", "show", "cancel"):
        assert re.search(rf"^\s+{command}\s+\S", runs_help, re.MULTILINE), runs_help
    assert re.search(r"^\s+list\s+\S", server.cli("flows", "--help").stdout, re.MULTILINE)
    assert re.search(r"^\s+revoke\s+\S", server.cli("keys", "--help").stdout, re.MULTILINE)
    notebook = write_notebook(tmp_path / "frames.ipynb", DF_CELLS)
    server.cli("register", str(notebook))
    with server.client() as client:
        for _ in range(200):  # well over a pipe's 64 KiB of JSON
            client.create_flow_run(flow_name="frames")
    # `nbflow runs list --json | head -1`: the reader goes away after one line.
    done = subprocess.run(
        f"{sys.executable} -m nbflow.cli runs list --json --limit 500 | head -n 1",
        shell=True, env={**server.env(), "NBFLOW_API_URL": server.url, "NBFLOW_API_KEY": server.admin_key or ""},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "{"
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    # `--state` takes any spelling of a state's name.
    listed = json.loads(server.cli("runs", "list", "--state", "scheduled", "--json").stdout)
    assert listed["total"] == 200


def test_runs_created_from_a_notebook_are_made_once_per_batch(server: ServerProcess, tmp_path: Path) -> None:
    from nbflow.cells.ipynb import flow_from_notebook
    from nbflow.kernel import remote

    notebook = flow_from_notebook(write_notebook(tmp_path / "frames.ipynb", DF_CELLS))
    with server.client() as client:
        _, first = remote.create_runs(notebook, client, [{}, {}], batch="cell-7")
        _, again = remote.create_runs(notebook, client, [{}, {}], batch="cell-7")  # a retried call
        _, other = remote.create_runs(notebook, client, [{}], batch=None)
        total = client.flow_runs(flow_name="frames")[1]
    assert [r.id for r in again] == [r.id for r in first] and len({r.id for r in first}) == 2
    assert other[0].id not in {r.id for r in first}
    assert total == 3
