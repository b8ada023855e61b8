"""What a caller sees of a server error: our own errors with their message and code, an
unexpected failure masked (its detail only in the server's log), and a request without
errors untouched."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from nbflow.server.app import Settings, create_app
from nbflow.server.services import runs as run_service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import run_in_own_loop  # noqa: E402

if TYPE_CHECKING:
    import pytest


async def ask(database: str, queries: list[str]) -> list[dict[str, Any]]:
    """The answers to ``queries``, sent with the first tenant's admin key to a server in process."""
    keys: list[str] = []
    app = create_app(
        Settings(database_url=database, run_scheduler=False, run_recovery=False, run_hooks=False,
                 on_bootstrap=keys.append)
    )  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"Authorization": f"Bearer {keys[0]}"}
            return [
                (await client.post("/graphql", json={"query": q}, headers=headers)).json() for q in queries
            ]


def test_an_unexpected_failure_is_masked_and_ours_are_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: Any) -> None:
        raise RuntimeError("the secret detail of a bug")

    monkeypatch.setattr(run_service, "cancel_flow_run", broken)
    unexpected, ours, fine = run_in_own_loop(
        ask(
            f"sqlite+aiosqlite:///{tmp_path}/nbflow.db",
            [
                'mutation { cancelFlowRun(flowRunId: "r1") { id } }',
                'mutation { createFlowRun(input: {flowName: "no-such-flow"}) { created } }',
                "{ __typename }",
            ],
        )
    )
    (error,) = unexpected["errors"]
    assert error["message"] == "internal error: the server logged the details"
    assert "secret" not in str(unexpected)
    assert "the secret detail of a bug" in caplog.text  # where the operator finds it
    (error,) = ours["errors"]
    assert error["message"] == "no flow 'no-such-flow' in this tenant"
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert fine == {"data": {"__typename": "Query"}}
