"""Hostile and malformed input against a real server process (SQLite and PostgreSQL).

Each test is the regression test of one item of issue 11: the request is refused
with a JSON error that says what was wrong, nothing else breaks, and the server
writes no traceback for a client's mistake.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import DF_CELLS, write_notebook  # noqa: E402
from server_helpers import ONE_TASK_STORAGE as STORAGE  # noqa: E402
from server_helpers import ONE_TASK_STRUCTURE as STRUCTURE
from server_helpers import ServerProcess, log_line, task_change, wait_for

from nbflow.core.errors import APIError, AuthError  # noqa: E402

pytestmark = pytest.mark.integration


def post(server: ServerProcess, body: bytes, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or server.admin_key}", "Content-Type": "application/json"}
    return httpx.post(f"{server.url}/graphql", content=body, headers=headers, timeout=30)


def tracebacks(server: ServerProcess) -> int:
    return server.log_path.read_text().count("Traceback")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"null", "must be a JSON object with a 'query', got NoneType"),
        (b"123", "must be a JSON object with a 'query', got int"),
        (b'"q"', "must be a JSON object with a 'query', got str"),
        (b"[1, 2]", "got list"),
        (b"{not json", "the request body is not JSON"),
        (b'{"query": "{ me { role } }", "variables": {"x": NaN}}', "the request body is not JSON"),
        (b'{"query": 5}', "needs a 'query' string"),
        (b'{"query": "{ me { role } }", "variables": [1]}', "'variables' must be a JSON object"),
        (b"[" * 990 + b"]" * 990, "nested more than 64 levels"),
        (
            b'{"query": "{ me { role } }", "variables": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}",
            "nested more",
        ),
    ],
)
def test_a_body_that_is_not_a_graphql_request_gets_a_json_400(
    server: ServerProcess, body: bytes, message: str
) -> None:
    before = tracebacks(server)
    response = post(server, body)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert message in error["message"] and error["extensions"]["code"] == "BAD_REQUEST"
    assert response.headers["content-type"].startswith("application/json")
    assert tracebacks(server) == before
    assert post(server, b'{"query": "{ me { role } }"}').json()["data"]["me"]["role"] == "admin"


@pytest.mark.parametrize(
    "variables",
    [{"id": True}, {"id": None}, {"id": 3.5}, {"id": {"nested": "object"}}, {}],
)
def test_a_variable_of_the_wrong_type_is_a_validation_error_not_an_internal_one(
    server: ServerProcess, variables: dict
) -> None:
    before = tracebacks(server)
    body = json.dumps({"query": "query($id: String!) { flowRun(id: $id) { id } }", "variables": variables})
    response = post(server, body.encode())
    errors = response.json()["errors"]
    assert "internal error" not in errors[0]["message"]
    assert "$id" in errors[0]["message"] or "'id'" in errors[0]["message"]
    assert tracebacks(server) == before


def test_a_task_run_id_of_another_tenant_is_refused_cleanly(server: ServerProcess) -> None:
    with server.client() as admin:
        admin.register_flow("etl", STRUCTURE, STORAGE)
        run = admin.create_flow_run(flow_name="etl")
        assert admin.set_task_run_states([task_change(run.id, "shared-id", "a", "Running")])[0].ok
    done = server.cli("server", "tenants", "create", "acme", "--db", server.database_url)
    other_key = next(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("nbf_"))
    with server.client(other_key) as other:
        other.register_flow("etl", STRUCTURE, STORAGE)
        theirs = other.create_flow_run(flow_name="etl")
        (result,) = other.set_task_run_states([task_change(theirs.id, "shared-id", "a", "Running")])
    assert not result.ok and result.error == "task run id 'shared-id' is taken; make a new id"
    with server.client() as admin:
        assert [t.state for t in admin.flow_run(run.id).task_runs] == ["Running"]


def test_text_with_nul_characters_is_stored_on_both_databases(server: ServerProcess) -> None:
    with server.client() as client:
        client.register_flow("etl", STRUCTURE, STORAGE)
        run = client.create_flow_run(flow_name="etl")
        lines = [log_line(run.id, i, f"line {i} \x00 with a NUL", task="a") for i in range(1, 102)]
        assert client.write_run_logs(lines) == 101
        failed = task_change(run.id, "t-1", "a", "Running")
        assert client.set_task_run_states([failed])[0].ok
        (result,) = client.set_task_run_states(
            [{**task_change(run.id, "t-1", "a", "Failed"), "message": "ValueError: bad \x00 byte"}]
        )
        assert result.ok
        logs = client.run_logs(run.id, limit=1000)
        shown = client.flow_run(run.id)
    assert len(logs) == 101 and logs[0]["message"] == "line 1 \\x00 with a NUL"
    assert shown.task_runs[0].state == "Failed" and shown.task_runs[0].message == "ValueError: bad \\x00 byte"


@pytest.mark.parametrize(
    ("schedule", "error"),
    [
        ({"type": "cron", "cron": "0 0 30 2 *"}, "has no run time after"),
        ({"type": "interval", "interval": 1e12}, "has no run time after"),
        ({"type": "interval", "interval": 0.001}, "interval must be at least 1 second"),
        ({"type": "interval", "interval": 60, "end_date": "2001-01-01T00:00:00"}, "its end date has passed"),
    ],
)
def test_a_schedule_that_never_fires_is_refused_at_registration(
    server: ServerProcess, schedule: dict, error: str
) -> None:
    with server.client() as client, pytest.raises(APIError, match=error):
        client.register_flow("never", STRUCTURE, STORAGE, schedule=schedule)


def test_one_bad_schedule_never_stops_the_others(server: ServerProcess, tmp_path: Path) -> None:
    # A schedule that registers fine but overflows later (it ends its runs at the year 9999).
    late = {"type": "interval", "interval": 3600, "start_date": "9999-12-31T15:00:00"}
    with server.client() as client:
        client.register_flow("late", STRUCTURE, {**STORAGE, "sha256": "1" * 64}, schedule=late)
    server.cli("register", str(write_notebook(tmp_path / "frames.ipynb", DF_CELLS)), "--schedule-every", "1m")

    def scheduled() -> int | None:
        with server.client() as client:
            return client.flow_runs(flow_name="frames", states=["Scheduled"])[1] or None

    assert wait_for(scheduled, what="the good flow's runs") == 10


def test_a_huge_or_hostile_run_request_is_refused(server: ServerProcess) -> None:
    with server.client() as client:
        client.register_flow("etl", STRUCTURE, STORAGE)
        with pytest.raises(APIError, match="over the limit of 65536"):
            client.create_flow_run(flow_name="etl", parameters={"p": "x" * 200_000})
        with pytest.raises(APIError, match="must not contain control characters"):
            client.create_flow_run(flow_name="etl", labels=["g\npu"])
        with pytest.raises(APIError, match="storage.location must not contain control characters"):
            client.register_flow("etl", STRUCTURE, {**STORAGE, "location": "/tmp/a\tb"})
        assert client.flow_runs(flow_name="etl")[1] == 0
        # A NUL anywhere becomes the visible text \x00 at the door: stored, never an error.
        odd = client.create_flow_run(flow_name="etl", parameters={"p": "a\x00b"}, labels=["gpu\x00"])
        assert odd.parameters == {"p": "a\\x00b"} and odd.labels == ["gpu\\x00"]
    # ... in a string of the document itself too, not only in its variables, however the
    # document spells it: GraphQL's \u0000 and \u{0}, and JSON escaping the backslash itself.
    for spelled in ("\\\\u0000", "\\\\u{0}", "\\\\u{000000}", "\\u005cu0000", "\\u005cu{0}"):
        literal = (
            '{"query": "mutation { createFlowRun(input: {flowName: \\"etl\\", labels: [\\"g'
            + spelled
            + '\\"]}) { flowRun { labels } } }"}'
        )
        answer = httpx.post(f"{server.url}/graphql", content=literal, headers={
            "authorization": f"Bearer {server.admin_key}", "content-type": "application/json"})  # fmt: skip
        assert answer.status_code == 200, (spelled, answer.text)
        assert answer.json()["data"]["createFlowRun"]["flowRun"]["labels"] == ["g\\x00"], (
            spelled,
            answer.text,
        )


def test_huge_headers_are_refused_and_the_server_keeps_serving(server: ServerProcess) -> None:
    """Headers are read before any limit of the app applies: the HTTP parser must bound them."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(server.url)
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Padding: "
        + b"a" * 4_000_000
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        try:
            connection.sendall(request)
            answer = connection.recv(200)
        except (ConnectionResetError, BrokenPipeError):  # refused before it was all sent
            answer = b"HTTP/1.1 400"
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:100]
    with server.client() as client:
        assert client.graphql("{ me { role } }")["me"]["role"] == "admin"


def test_runs_no_agent_can_take_do_not_starve_the_queue(server: ServerProcess) -> None:
    with server.client() as admin:
        admin.register_flow("etl", STRUCTURE, STORAGE)
        for _ in range(120):
            admin.create_flow_run(flow_name="etl", labels=["nobody-has-this"])
        mine = admin.create_flow_run(flow_name="etl", labels=["gpu"])
        agent_key = admin.create_api_key("agent").key
    with server.client(agent_key) as agent:
        offered = agent.get_runs_in_queue(["gpu"], limit=10)
    assert [r.id for r in offered] == [mine.id]


def test_an_agent_key_reads_no_more_than_its_role_allows(server: ServerProcess) -> None:
    with server.client() as admin:
        admin.register_flow("etl", STRUCTURE, STORAGE)
        run = admin.create_flow_run(flow_name="etl")
        admin.write_run_logs([log_line(run.id, 1, "secret line")])
        agent_key = admin.create_api_key("agent").key
    query = f'mutation {{ heartbeat(flowRunIds: ["{run.id}"]) {{ id state version execution }} }}'
    with server.client(agent_key) as agent:
        assert agent.graphql(query)["heartbeat"][0]["state"] == "Scheduled"
        with pytest.raises(APIError, match="Cannot query field 'parameters'"):
            agent.graphql(f'mutation {{ heartbeat(flowRunIds: ["{run.id}"]) {{ parameters }} }}')
        with pytest.raises(AuthError, match="an agent key may not read flows and runs"):
            agent.graphql("mutation { getRunsInQueue(labels: []) { id logs { message } } }")
        with pytest.raises(AuthError, match="an agent key may not read flows and runs"):
            agent.graphql("mutation { getRunsInQueue(labels: []) { id taskRuns { id } } }")


def test_a_revoked_key_stops_its_open_live_feed(server: ServerProcess) -> None:
    with server.client() as admin:
        reader = admin.create_api_key("read-only")
    received: list[str] = []
    with httpx.stream(
        "GET", f"{server.url}/events", headers={"Authorization": f"Bearer {reader.key}"}, timeout=30
    ) as response:
        assert response.status_code == 200
        with server.client() as admin:
            admin.revoke_api_key(reader.id)
        started = time.monotonic()
        for line in response.iter_lines():
            received.append(line)
            if line.startswith("data: ") and "revoked" in line:
                break
        took = time.monotonic() - started
    assert any("the API key was revoked" in line for line in received)
    assert took < 10


def test_keys_never_travel_in_urls(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/events", params={"access_token": server.admin_key}, timeout=10)
    assert response.status_code == 401
