"""Secrets, hooks and concurrency slots through the API on SQLite and PostgreSQL (a fresh database
each): the dialect-specific parts (ON CONFLICT inserts, the row lock that serialises acquirers)."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from receivers import Receiver  # noqa: E402
from server_helpers import ETL_STRUCTURE, ONE_TASK_STORAGE, ServerProcess, agent_key, flow_change, wait_for  # noqa: E402

from nbflow import client_team as team  # noqa: E402
from nbflow.core.errors import APIError  # noqa: E402

pytestmark = [pytest.mark.integration]


def running_run(server: ServerProcess) -> str:
    """A registered flow's run, claimed and Running (so it may read secrets and take slots)."""
    with server.client() as client:
        client.register_flow("etl", ETL_STRUCTURE, ONE_TASK_STORAGE)
        run = client.create_flow_run(flow_name="etl")
        (claim,) = client.set_flow_run_states([flow_change(run.id, "Submitted", run.version, agent_id="a")])
        (running,) = client.set_flow_run_states([flow_change(run.id, "Running", claim.version)])
        assert claim.ok and running.ok
    return run.id


def test_secrets_hooks_and_slots_on_each_backend(server: ServerProcess) -> None:
    receiver = Receiver()
    try:
        with server.client() as admin:
            admin.execute(team.add_hook("on-running", "webhook", receiver.url, states=["Running"]))
            admin.execute(team.set_secret("TOKEN", "first-value"))
            admin.execute(team.set_secret("TOKEN", "second-value"))
            assert [s["name"] for s in admin.execute(team.secrets())] == ["TOKEN"]
            admin.execute(team.set_concurrency_limit("db", 1))
        run_id = running_run(server)
        with server.client(agent_key(server)) as agent:
            assert agent.execute(team.run_secret(run_id, "TOKEN")) == "second-value"
            assert agent.execute(team.run_secret(run_id, "NOPE")) is None

            # Two task runs ask for the one slot at the same moment: exactly one gets it.
            answers: dict[str, tuple[bool, str]] = {}
            barrier = threading.Barrier(2)

            def ask(task_run_id: str) -> None:
                with server.client(agent.key) as mine:
                    barrier.wait()
                    answers[task_run_id] = mine.execute(
                        team.acquire_slots(run_id, task_run_id, "load", ["db", "x"])
                    )

            threads = [threading.Thread(target=ask, args=(t,)) for t in ("t-1", "t-2")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(granted for granted, _ in answers.values()) == [False, True]
            winner = next(t for t, (granted, _) in answers.items() if granted)
            loser = next(t for t in answers if t != winner)
            assert answers[loser][1] == "tag 'db' has 1 of 1 slots in use"
            assert agent.execute(team.acquire_slots(run_id, winner, "load", ["db"])) == (
                True,
                "",
            )  # held already
            assert agent.execute(team.release_slots(run_id, winner)) == 1
            assert agent.execute(team.acquire_slots(run_id, loser, "load", ["db"])) == (True, "")
        with server.client() as admin:
            [limit] = admin.execute(team.concurrency_limits())
            assert (limit["inUse"], limit["holders"][0]["taskRunId"]) == (1, loser)
            wait_for(lambda: receiver.bodies, what="the Running hook")
            [delivery] = admin.execute(team.hook_deliveries("on-running"))
            assert (delivery["status"], delivery["flowRunId"], delivery["state"]) == (
                "delivered",
                run_id,
                "Running",
            )
            assert len(receiver.bodies) == 1
            admin.execute(team.delete_secret("TOKEN"))
            with pytest.raises(APIError, match="no secret 'TOKEN'"):
                admin.execute(team.delete_secret("TOKEN"))

            # A run still not started long after its scheduled time is Late, once.
            admin.execute(team.add_hook("late", "webhook", receiver.url, states=["Late"], late_minutes=5))
            overdue = admin.create_flow_run(
                flow_name="etl", scheduled_start_time=datetime.now(UTC) - timedelta(minutes=30)
            )
            wait_for(lambda: len(receiver.bodies) == 2, what="the Late hook")
            late = receiver.bodies[1]
            assert (late["state"], late["flow_run_id"]) == ("Late", overdue.id)
            assert late["text"].startswith(
                f"nbflow: flow run {overdue.id} of flow 'etl' is Late: not started 30 minutes"
            )
            with pytest.raises(APIError, match="a Late hook needs late_minutes"):
                admin.execute(team.add_hook("bad", "webhook", receiver.url, states=["Late"]))
    finally:
        receiver.close()
