"""Keys, roles, tenants, bounded requests, and what the server never learns."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import ServerProcess, flow_change, log_line, task_change  # noqa: E402

from nbflow.core.errors import APIError, AuthError, TransportError  # noqa: E402

pytestmark = pytest.mark.integration

STRUCTURE = {"name": "etl", "tasks": [{"slug": "a"}], "edges": [], "parameters": []}
STORAGE = {"kind": "local", "location": "/srv/etl.py", "sha256": "b" * 64}


def post(
    server: ServerProcess, query: str, key: str | None, variables: dict | None = None, **kwargs
) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=10,
        **kwargs,
    )


def count_runs(server: ServerProcess) -> int:
    with server.client() as client:
        return client.flow_runs(limit=1)[1]


def test_missing_wrong_and_revoked_keys_are_denied(server: ServerProcess) -> None:
    response = post(server, "{ me { role } }", None)
    assert response.status_code == 401
    assert (
        response.json()["errors"][0]["message"]
        == "missing API key: send the header 'Authorization: Bearer <key>'"
    )
    for wrong in ("nope", "nbf_abc_def", server.admin_key[:-2] + "xx"):  # type: ignore[index]
        response = post(server, "{ me { role } }", wrong)
        assert response.status_code == 401
        assert response.json()["errors"][0]["message"] == "invalid or revoked API key"
    with server.client() as admin:
        user = admin.create_api_key("user", "alice")
        with server.client(user.key) as client:
            assert client.me()["role"] == "user"
        admin.revoke_api_key(user.id)
    with server.client(user.key) as client, pytest.raises(AuthError, match="invalid or revoked API key"):
        client.me()


def test_roles_limit_what_a_key_may_do(server: ServerProcess) -> None:
    with server.client() as admin:
        admin.register_flow("etl", STRUCTURE, STORAGE)
        run = admin.create_flow_run(flow_name="etl")
        agent_key = admin.create_api_key("agent").key
        reader_key = admin.create_api_key("read-only").key
        user_key = admin.create_api_key("user").key
    with server.client(agent_key) as agent:
        with pytest.raises(AuthError, match="an agent key may not register flows"):
            agent.register_flow("sneaky", STRUCTURE, STORAGE)
        with pytest.raises(AuthError, match="an agent key may not read flows and runs"):
            agent.flow_runs()
        with pytest.raises(AuthError, match="may not manage API keys"):
            agent.create_api_key("admin")
        # What an agent is for: pulling work, reporting states and logs.
        assert [r.id for r in agent.get_runs_in_queue([])] == [run.id]
        claimed = agent.set_flow_run_states([flow_change(run.id, "Submitted", 1)])
        assert claimed[0].ok
    with server.client(reader_key) as reader:
        assert reader.flow_run(run.id).state == "Submitted"
        with pytest.raises(AuthError, match="a read-only key may not register flows, create or cancel runs"):
            reader.create_flow_run(flow_name="etl")
        with pytest.raises(
            AuthError, match="may not set run states or write logs; ask for a key with role admin or agent$"
        ):
            reader.set_flow_run_states([flow_change(run.id, "Running", 2)])
    with server.client(user_key) as user:
        with pytest.raises(AuthError, match="a user key may not manage API keys"):
            user.create_api_key("admin")
        with pytest.raises(AuthError, match="may not pull work"):
            user.get_runs_in_queue([])


def test_a_run_token_reports_only_its_run_and_dies_when_the_run_is_claimed_again(
    server: ServerProcess,
) -> None:
    with server.client() as admin:
        admin.register_flow("etl", STRUCTURE, STORAGE)
        run, other = admin.create_flow_run(flow_name="etl"), admin.create_flow_run(flow_name="etl")
        agent_key = admin.create_api_key("agent").key
    with server.client(agent_key) as agent:
        first = agent.set_flow_run_states([flow_change(run.id, "Submitted", 1)])[0]
        assert first.ok and first.run_token and first.run_token.startswith(f"nbr_{run.id}_")
    with server.client(first.run_token) as flow_process:
        written = flow_process.set_task_run_states([task_change(run.id, "t-1", "a", "Running", execution=2)])
        assert written[0].ok, written
        with pytest.raises(AuthError, match=f"may only report its own run \\({run.id}\\)"):
            flow_process.set_task_run_states([task_change(other.id, "t-2", "a", "Running", execution=2)])
        # Used again and again, as a flow process does: the server remembers it for a moment...
        (succeeded,) = flow_process.set_task_run_states(
            [task_change(run.id, "t-1", "a", "Success", execution=2)]
        )
        assert succeeded.ok
    with server.client(agent_key) as agent:  # ... the agent gives the run back, and it is claimed again
        released = agent.set_flow_run_states([flow_change(run.id, "Scheduled", first.version)])[0]
        assert released.ok, released
        second = agent.set_flow_run_states([flow_change(run.id, "Submitted", released.version)])[0]
        assert second.ok and second.run_token not in (None, first.run_token)
    # ... and the old token stops working at once; the new one works.
    answer = post(server, "{ __typename }", first.run_token)
    assert answer.status_code == 401 and "invalid or revoked" in answer.text
    with server.client(second.run_token) as flow_process:
        written = flow_process.set_task_run_states(
            [task_change(run.id, "t-3", "a", "Running", execution=second.version)]
        )
        assert written[0].ok, written


def test_another_tenant_sees_nothing_and_touches_nothing(server: ServerProcess) -> None:
    with server.client() as admin:
        admin.register_flow("etl", STRUCTURE, STORAGE)
        run = admin.create_flow_run(flow_name="etl")
    done = server.cli("server", "tenants", "create", "acme", "--db", server.database_url)
    other_key = next(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("nbf_"))
    with server.client(other_key) as other:
        assert other.me()["tenantName"] == "acme"
        assert other.flows() == []
        assert other.flow_runs()[1] == 0
        with pytest.raises(APIError, match=f"no flow run '{run.id}' in this tenant"):
            other.flow_run(run.id)
        with pytest.raises(APIError, match=f"no flow run '{run.id}' in this tenant"):
            other.cancel_flow_run(run.id)
        with pytest.raises(APIError, match="no flow 'etl' in this tenant"):
            other.create_flow_run(flow_name="etl")
        results = other.set_task_run_states([task_change(run.id, "x", "a", "Running")])
        assert not results[0].ok and "in this tenant" in results[0].error
        with pytest.raises(APIError, match="in this tenant"):
            other.write_run_logs([log_line(run.id, 1, "x")])
        agent_key = other.create_api_key("agent").key
    with server.client(agent_key) as other_agent:
        assert other_agent.get_runs_in_queue([]) == []  # the default tenant's run is not offered
    with server.client() as admin:
        assert admin.flow_run(run.id).task_runs == []
        assert admin.run_logs(run.id) == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"query": "{ flowRuns { items { id } "}, 200, "Syntax Error"),
        (
            {"query": "{ flowRuns { items { nope } } }"},
            200,
            "Cannot query field 'nope' on type 'FlowRunType'.",
        ),
        ({"query": "{ flowRun(id: 5) { id } }"}, 200, "String cannot represent a non string value: 5"),
        (
            {"query": "{ flowRuns(limit: 100000) { total } }"},
            200,
            "limit must be between 1 and 1000, got 100000",
        ),
        ({"query": "query { " + " ".join(f"a{i}: me {{ role }}" for i in range(40)) + " }"}, 200, "aliases"),
    ],
)
def test_bad_graphql_gets_a_clear_error_never_a_500(
    server: ServerProcess, body: dict, status: int, message: str | None
) -> None:
    response = httpx.post(
        f"{server.url}/graphql",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=10,
    )
    assert response.status_code == status
    errors = response.json()["errors"]
    text = " ".join(e["message"] for e in errors)
    assert "Traceback" not in response.text
    if message is not None:
        assert message in text


def test_query_deeper_than_the_limit_is_refused(server: ServerProcess) -> None:
    def nested(levels: int) -> str:
        inner = "id"
        for _ in range(levels):
            inner = f"taskRuns {{ flowRun {{ {inner} }} }}"
        return f"{{ flowRuns {{ items {{ {inner} }} }} }}"

    ok = post(server, nested(3), server.admin_key)  # depth 8: the limit
    assert ok.status_code == 200 and "errors" not in ok.json()
    refused = post(server, nested(4), server.admin_key)
    assert refused.status_code == 200
    assert refused.json()["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 8"


def test_body_over_the_size_limit_is_refused_and_nothing_is_written(server: ServerProcess) -> None:
    with server.client() as client:
        client.register_flow("etl", STRUCTURE, STORAGE)
        run = client.create_flow_run(flow_name="etl")
    huge = [
        {"flowRunId": run.id, "seq": i, "level": "INFO", "message": "x" * 2000, "timestamp": 1.0}
        for i in range(3000)
    ]
    query = "mutation($logs: [LogInput!]!) { writeRunLogs(logs: $logs) }"
    response = post(server, query, server.admin_key, {"logs": huge})
    assert response.status_code == 413
    assert "request body over the limit of 4194304 bytes" in response.json()["errors"][0]["message"]
    with server.client() as client:
        assert client.run_logs(run.id) == []
        before = count_runs(server)
        with pytest.raises(APIError):
            client.create_flow_run(flow_name="etl", parameters={"nope": 1})
        assert count_runs(server) == before


def test_unreachable_server_is_a_transport_error() -> None:
    from nbflow.client import Client

    with (
        Client("http://127.0.0.1:1", "nbf_x_y", retries=1, backoff=0.01) as client,
        pytest.raises(TransportError, match="cannot reach the nbflow server at http://127.0.0.1:1"),
    ):
        client.me()


def test_registration_sends_no_cell_source_and_no_data(tmp_path: Path, nbflow_home: Path) -> None:
    marker = "MARKER-7f3a9c-never-in-the-database"
    database = tmp_path / "secret" / "nbflow.db"
    server = ServerProcess(nbflow_home, f"sqlite+aiosqlite:///{database}").start()
    try:
        notebook = write_notebook(
            tmp_path / "secret.ipynb",
            [
                f"%%setup\nSECRET = '{marker}-setup'",
                "%%params\nlimit = 3",
                f"%%task extract\nrows = ['{marker}-data'] * limit",
                f"%%task report\nsummary = len(rows)\nprint('{marker}-log')",
            ],
        )
        server.cli("register", str(notebook), "--schedule-every", "1h")
        with server.client() as client:
            run = client.create_flow_run(flow_name="secret")
            assert client.flow_run(run.id).state == "Scheduled"
            structure = client.flow(name="secret")
            assert structure.version == 1
    finally:
        server.stop()
    stored = b"".join(p.read_bytes() for p in database.parent.glob("nbflow.db*"))
    assert len(stored) > 10_000
    assert marker.encode() not in stored
    # The code itself went to storage, where the agent will read it.
    code = list((nbflow_home / "storage").rglob("*.py"))
    assert len(code) == 1 and marker in code[0].read_text()
