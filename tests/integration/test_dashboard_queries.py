"""The web UI's read-side queries (schema/dashboard.py) on SQLite and PostgreSQL: what they
count, that they stay in the caller's tenant, and that bad arguments get a clear error."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import ETL_STRUCTURE as STRUCTURE  # noqa: E402, TC002
from server_helpers import ServerProcess, flow_change, log_line, task_change

pytestmark = pytest.mark.integration

STORAGE = {"kind": "local", "location": "/srv/etl.py", "sha256": "c" * 64}

DASHBOARD = """{ dashboard(hours: 24, buckets: 4) {
  counts { state count } buckets { start counts { state count } }
  upcoming { id scheduledStartTime flow { name } }
  failingFlows { flow { name } failed runs lastFailure }
  stranded { labels count flows nextStart }
  agents { name labels online activeRuns lastSeen } } }"""


def gql(server: ServerProcess, key: str | None, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def data(server: ServerProcess, query: str, key: str | None = None, **variables: Any) -> dict[str, Any]:
    body = gql(server, key or server.admin_key, query, **variables)
    assert "errors" not in body, body
    return body["data"]


def error(server: ServerProcess, query: str, key: str | None = None, **variables: Any) -> str:
    body = gql(server, key or server.admin_key, query, **variables)
    assert body.get("errors"), body
    return body["errors"][0]["message"]


def finish(client: Any, run_id: str, final: str) -> None:
    version = client.flow_run(run_id).version
    for state in ("Submitted", "Running", final):
        (result,) = client.set_flow_run_states([flow_change(run_id, state, version)])
        assert result.ok, result.error
        version = result.version


def test_dashboard_counts_runs_upcoming_failing_flows_agents_and_stranded_runs(server: ServerProcess) -> None:
    with server.client() as client:
        client.register_flow("etl", STRUCTURE, STORAGE)
        client.register_flow("gpu_train", {**STRUCTURE, "name": "gpu_train"}, STORAGE, labels=["gpu"])
        done = [client.create_flow_run(flow_name="etl").id for _ in range(3)]
        finish(client, done[0], "Success")
        finish(client, done[1], "Failed")
        finish(client, done[2], "Failed")
        later = datetime.now(UTC) + timedelta(hours=2)
        soon = client.create_flow_run(flow_name="etl", scheduled_start_time=later)
        client.create_flow_run(flow_name="gpu_train")
        read_only = client.create_api_key("read-only").key
        agent_key = client.create_api_key("agent").key
    with server.client(agent_key) as agent:
        agent.register_agent("cpu-box", ["cpu"])

    board = data(server, DASHBOARD, read_only)["dashboard"]
    assert {c["state"]: c["count"] for c in board["counts"]} == {"Success": 1, "Failed": 2, "Scheduled": 1}
    assert len(board["buckets"]) == 4
    assert sum(c["count"] for b in board["buckets"] for c in b["counts"]) == 4
    assert [(u["id"], u["flow"]["name"]) for u in board["upcoming"]] == [(soon.id, "etl")]
    (failing,) = board["failingFlows"]
    assert (failing["flow"]["name"], failing["failed"], failing["runs"]) == ("etl", 2, 3)
    # The cpu agent takes etl's unlabelled runs but not gpu_train's: those are stranded.
    assert [(s["labels"], s["count"], s["flows"]) for s in board["stranded"]] == [(["gpu"], 1, ["gpu_train"])]
    (cpu,) = board["agents"]
    assert (cpu["name"], cpu["labels"], cpu["online"], cpu["activeRuns"]) == ("cpu-box", ["cpu"], True, 0)

    with server.client(agent_key) as agent:
        agent.register_agent("gpu-box", ["gpu", "cpu"])
    board = data(server, DASHBOARD)["dashboard"]
    assert board["stranded"] == []
    assert sorted(a["name"] for a in board["agents"]) == ["cpu-box", "gpu-box"]
    assert "may not read flows and runs" in error(server, DASHBOARD, agent_key)
    assert "hours must be between 1 and 2160" in error(server, "{ dashboard(hours: 0) { since } }")
    assert "buckets must be between 1 and 96" in error(server, "{ dashboard(buckets: 500) { since } }")


def test_another_tenant_sees_none_of_it(server: ServerProcess) -> None:
    with server.client() as client:
        client.register_flow("etl", STRUCTURE, STORAGE)
        run = client.create_flow_run(flow_name="etl")
        finish(client, run.id, "Failed")
        agent_key = client.create_api_key("agent").key
    with server.client(agent_key) as agent:
        agent.register_agent("box", [])
    created = server.cli("server", "tenants", "create", "acme", "--db", server.database_url)
    other = next(line.strip() for line in created.stdout.splitlines() if line.strip().startswith("nbf_"))
    board = data(server, DASHBOARD, other)["dashboard"]
    assert (board["counts"], board["failingFlows"], board["agents"], board["stranded"]) == ([], [], [], [])
    assert "no flow run" in error(server, f'{{ runHistory(flowRunId: "{run.id}") {{ position }} }}', other)
    assert "no flow run" in error(server, f'{{ runLogs(flowRunId: "{run.id}") {{ id }} }}', other)
    assert "no flow run" in error(server, f'{{ runHistoryRows(flowRunId: "{run.id}") }}', other)
    flow_id = data(server, "{ flows { id } }")["flows"][0]["id"]
    recent = data(
        server, "query($ids: [String!]!) { recentRuns(flowIds: $ids) { runs { id } } }", other, ids=[flow_id]
    )
    assert recent["recentRuns"] == [{"runs": []}]


def test_task_run_history_gives_every_attempt_and_logs_filter_by_level_task_and_text(
    server: ServerProcess,
) -> None:
    with server.client() as client:
        client.register_flow("etl", STRUCTURE, STORAGE)
        run = client.create_flow_run(flow_name="etl")
        t0 = time.time()
        states = [
            ("t-extract", "extract", "Running", 1), ("t-extract", "extract", "Retrying", 1),
            ("t-extract", "extract", "Running", 2), ("t-extract", "extract", "Success", 2),
            ("t-load", "load", "Running", 1), ("t-load", "load", "Failed", 1),
        ]  # fmt: skip
        for i, (task_run, slug, state, attempt) in enumerate(states):
            change = task_change(run.id, task_run, slug, state, attempt=attempt, timestamp=t0 + i)
            (result,) = client.set_task_run_states([change])
            assert result.ok, result.error
        lines = [
            ("extract", "DEBUG", "connecting"), ("extract", "WARNING", "Slow source: 100% busy"),
            ("load", "ERROR", "ValueError: bad row 7"), ("load", "INFO", "loaded 3 rows"),
        ]  # fmt: skip
        client.write_run_logs(
            [
                log_line(run.id, i, message, level=level, task=slug)
                for i, (slug, level, message) in enumerate(lines)
            ]
        )
        other_run = client.create_flow_run(flow_name="etl")
        client.write_run_logs([log_line(other_run.id, 0, "elsewhere", level="ERROR")])

    query = (
        "query($id: String!) { runHistory(flowRunId: $id) { taskSlug state attempt transitionId position } }"
    )
    history = data(server, query, id=run.id)["runHistory"]
    assert [(h["taskSlug"], h["state"]) for h in history[:1]] == [(None, "Scheduled")]  # the run's own first
    assert [(h["taskSlug"], h["state"], h["attempt"]) for h in history[1:]] == [s[1:] for s in states]
    assert len({h["transitionId"] for h in history}) == len(history)
    assert [h["position"] for h in history] == sorted(h["position"] for h in history)
    rows = data(server, "query($id: String!) { runHistoryRows(flowRunId: $id) }", id=run.id)["runHistoryRows"]
    assert [(r[0], r[1], r[2], r[4], r[6]) for r in rows] == [
        (h["position"], h["taskSlug"], h["state"], h["attempt"], h["transitionId"]) for h in history
    ]

    def messages(**filters: Any) -> list[str]:
        query = """query($id: String!, $levels: [String!], $min: String, $q: String, $task: String, $after: Int!) {
          runLogs(flowRunId: $id, levels: $levels, minLevel: $min, search: $q, taskSlug: $task, afterId: $after) {
            id message } }"""
        variables = {
            "id": run.id,
            "levels": None,
            "min": None,
            "q": None,
            "task": None,
            "after": 0,
            **filters,
        }
        return [entry["message"] for entry in data(server, query, **variables)["runLogs"]]

    assert messages() == [m for _, _, m in lines]
    assert messages(min="warning") == ["Slow source: 100% busy", "ValueError: bad row 7"]
    assert messages(levels=["INFO", "DEBUG"]) == ["connecting", "loaded 3 rows"]
    assert messages(q="ROW") == ["ValueError: bad row 7", "loaded 3 rows"]
    assert messages(q="100%") == ["Slow source: 100% busy"]  # % is text, not a wildcard
    assert messages(q="slow%busy") == []
    assert messages(task="extract", min="INFO") == ["Slow source: 100% busy"]
    rows_query = """query($id: String!, $after: Int!) { runLogRows(flowRunId: $id, afterId: $after, limit: 3,
      minLevel: "INFO") { rows count lastId more } }"""
    page = data(server, rows_query, id=run.id, after=0)["runLogRows"]
    assert [(r[1], r[2], r[3], r[4]) for r in page["rows"]] == [
        (1, "extract", "WARNING", "Slow source: 100% busy"), (2, "load", "ERROR", "ValueError: bad row 7"),
        (3, "load", "INFO", "loaded 3 rows"),
    ]  # fmt: skip
    assert page["count"] == 3 and page["lastId"] == page["rows"][-1][0] and page["more"] is False
    assert data(server, rows_query, id=run.id, after=page["lastId"])["runLogRows"] == {
        "rows": [], "count": 0, "lastId": page["lastId"], "more": False,
    }  # fmt: skip
    first_two = f'{{ runLogRows(flowRunId: "{run.id}", limit: 2) {{ count more }} }}'
    assert data(server, first_two)["runLogRows"] == {"count": 2, "more": True}
    assert "unknown log level 'loud'" in error(
        server, f'{{ runLogs(flowRunId: "{run.id}", minLevel: "loud") {{ id }} }}'
    )
    assert "limit must be between 1 and 10000" in error(
        server, f'{{ runLogs(flowRunId: "{run.id}", limit: 0) {{ id }} }}'
    )


def test_recent_runs_gives_each_flows_latest_runs_newest_first(server: ServerProcess) -> None:
    with server.client() as client:
        client.register_flow("etl", STRUCTURE, STORAGE)
        client.register_flow("other", {**STRUCTURE, "name": "other"}, STORAGE)
        now = datetime.now(UTC)
        made = [
            client.create_flow_run(flow_name="etl", scheduled_start_time=now - timedelta(minutes=m)).id
            for m in (30, 20, 10)
        ]
        client.create_flow_run(flow_name="etl", scheduled_start_time=now + timedelta(hours=1))  # not yet due
        flows = {f.name: f.id for f in client.flows()}
    query = "query($ids: [String!]!) { recentRuns(flowIds: $ids, perFlow: 2) { flowId runs { id } } }"
    recent = data(server, query, ids=[flows["etl"], flows["other"]])["recentRuns"]
    assert recent == [
        {"flowId": flows["etl"], "runs": [{"id": made[2]}, {"id": made[1]}]},
        {"flowId": flows["other"], "runs": []},
    ]
    assert "per_flow must be between 1 and 50" in error(
        server, "query($ids: [String!]!) { recentRuns(flowIds: $ids, perFlow: 99) { flowId } }", ids=[]
    )
