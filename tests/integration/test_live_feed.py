"""The live feed: one ordered sequence per tenant, complete, in the order records were stored.

Against real server processes (SQLite and PostgreSQL) and a real agent:
a 1,000-task run followed through ``/events`` and by ``%flow watch`` delivers
every task state before the run's final state; concurrent writers never make
a follower skip or repeat a record.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import Kernel, write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess, log_line, task_change  # noqa: E402

from nbflow.core.record import StateRecord, record_from_wire  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TASKS = 1000


def follow(server: ServerProcess, run_id: str, into: list[dict], done: threading.Event) -> None:
    """Read the run's feed from the start until its final flow state."""
    with server.client() as client:
        for _, batch in client.events(flow_run_id=run_id, from_start=True):
            into.extend(batch)
            if any(
                e["kind"] == "state" and e["task"] is None and record_from_wire(e).is_finished()
                for e in batch
            ):
                done.set()
                return


@pytest.mark.timeout(300)
def test_a_1000_task_run_arrives_whole_and_in_order_before_its_final_state(
    server: ServerProcess, tmp_path: Path
) -> None:
    cells = ["%load_ext nbflow", *(f"%%task t{i}\nv{i} = {i}" for i in range(TASKS))]
    notebook = write_notebook(tmp_path / "wide.ipynb", cells)
    server.cli("register", str(notebook))
    with server.client() as client:
        agent_key = client.create_api_key("agent").key
        run = client.create_flow_run(flow_name="wide")
    received: list[dict] = []
    done = threading.Event()
    follower = threading.Thread(target=follow, args=(server, run.id, received, done), daemon=True)
    follower.start()
    kernel = Kernel()
    agent = AgentProcess(server, agent_key).start()
    try:
        kernel.run("%load_ext nbflow")
        kernel.run(f"%flow watch {run.id} --server {server.url} --key {server.admin_key}")
        watch = kernel.session.watches[-1]
        assert done.wait(240), agent.log()
        assert watch.finished.wait(60)
        watch.widget.flush()
    finally:
        agent.stop()
        kernel.close()
    positions = [e["position"] for e in received]
    assert positions == sorted(set(positions)), "the feed repeated or reordered records"
    records = [record_from_wire(e) for e in received]
    final_at = next(
        i for i, r in enumerate(records) if isinstance(r, StateRecord) and r.task is None and r.is_finished()
    )
    assert records[final_at].state == "Success", records[final_at]
    finals = Counter(
        r.task for r in records[:final_at] if isinstance(r, StateRecord) and r.task and r.is_finished()
    )
    assert len(finals) == TASKS and set(finals.values()) == {1}
    # The widget %flow watch shows drew every task's final state.
    tasks = watch.widget.states["tasks"]
    assert Counter(t["state"] for t in tasks.values()) == Counter({"Success": TASKS})
    assert watch.widget.states["run"]["state"] == "Success"


def test_concurrent_writers_never_make_a_follower_skip_a_record(
    server: ServerProcess, tmp_path: Path
) -> None:
    notebook = write_notebook(tmp_path / "tiny.ipynb", ["%load_ext nbflow", "%%task a\nx = 1"])
    server.cli("register", str(notebook))
    with server.client() as client:
        run = client.create_flow_run(flow_name="tiny")
    writers, per_writer = 4, 60
    expected = 1 + 2 * writers * per_writer  # the run's Scheduled state, then each writer's states and lines
    seen: list[dict] = []

    def reader() -> None:
        # Tenant-wide, from the start, while the writers write: a record committed late
        # with an early position would be skipped here.
        with server.client() as client:
            for _, batch in client.events(cursor="0"):
                seen.extend(batch)
                if len(seen) >= expected:
                    return

    def writer(w: int) -> None:
        with server.client() as client:
            for i in range(per_writer):
                client.set_task_run_states([task_change(run.id, f"w{w}-{i}", f"t{w}", "Running")])
                client.write_run_logs([log_line(run.id, w * 1000 + i, f"w{w} line {i}", task=f"t{w}")])

    follower = threading.Thread(target=reader, daemon=True)
    follower.start()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    follower.join(30)
    assert len(seen) == expected, f"the follower got {len(seen)} of {expected} records"
    positions = [e["position"] for e in seen]
    assert positions == sorted(set(positions))
    assert Counter(e["kind"] for e in seen) == Counter(
        {"state": 1 + writers * per_writer, "log": writers * per_writer}
    )


def test_the_run_button_of_a_watched_run_follows_the_new_run_in_the_same_widget(
    server: ServerProcess, tmp_path: Path
) -> None:
    server.cli(
        "register", str(write_notebook(tmp_path / "tiny.ipynb", ["%load_ext nbflow", "%%task a\nx = 1"]))
    )
    with server.client() as client:
        first = client.create_flow_run(flow_name="tiny")
    kernel = Kernel()
    try:
        kernel.run("%load_ext nbflow")
        kernel.run(f"%flow watch {first.id} --server {server.url} --key {server.admin_key}")
        watch = kernel.session.watches[-1]
        shown = watch.widget
        shown._handle_custom_msg({"type": "run"}, [])  # the Run button
        assert watch.widget is shown  # the displayed widget follows the new run
        second = watch.run_id
        assert second != first.id
        shown._handle_custom_msg({"type": "cancel"}, [])  # Cancel acts on what the widget shows
        with server.client() as client:
            assert client.flow_run(second).state == "Cancelled"
            assert client.flow_run(first.id).state == "Scheduled"
        watch.stop()
    finally:
        kernel.close()
