"""The server's write path for the records agents send in bulk: the record scalars read what
clients send (and refuse what they must), and a batch of task-run states costs the same
handful of statements as one state."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import graphql
import pytest
from sqlalchemy import event, func, select

from nbflow.core.errors import RecordError
from nbflow.core.record import LogRecord, StateRecord, new_id
from nbflow.server.models import RunEvent, TaskRun
from nbflow.server.schema import build_schema
from nbflow.server.services import runs as run_service
from nbflow.server.services.flows import FlowSpec, register_flow
from nbflow.server.services.taskstore import SessionTaskRuns
from nbflow.server.services.transitions import set_task_run_states

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import run_in_own_loop, team_database  # noqa: E402

SCHEMA = build_schema()._schema
STRUCTURE = {"name": "f", "tasks": [{"slug": "a"}], "edges": [], "parameters": []}
STORAGE = {"kind": "local", "location": "/tmp/f.py", "sha256": "0" * 64}


def read(scalar: str, value: object) -> object:
    kind = SCHEMA.get_type(scalar)
    assert isinstance(kind, graphql.GraphQLScalarType)
    return kind.parse_value(value)


def test_a_task_state_in_camel_case_is_read_as_the_record() -> None:
    record = read(
        "TaskRunStateInput",
        {"flowRunId": "r1", "state": "Running", "transitionId": "x1", "timestamp": 5.0, "taskRunId": "t1",
         "task": "load", "resultRef": None, "startTime": 4.0},
    )  # fmt: skip
    assert record == StateRecord(
        flow_run_id="r1", state="Running", transition_id="x1", timestamp=5.0, task_run_id="t1", task="load",
        start_time=4.0,
    )  # fmt: skip


def test_a_log_line_is_read_with_its_level_checked() -> None:
    line = read(
        "LogInput", {"flowRunId": "r1", "level": "warning", "message": "hm", "timestamp": 1.0, "seq": 3}
    )
    assert line == LogRecord(flow_run_id="r1", level="WARNING", message="hm", timestamp=1.0, seq=3)
    with pytest.raises(RecordError, match="unknown level 'loud'"):
        read("LogInput", {"flowRunId": "r1", "level": "loud", "message": "hm", "timestamp": 1.0})


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ({"flowRunId": "r", "state": "Running", "transitionId": "x", "timestamp": 1.0, "taskRun": "t"},
         "unknown field 'taskRun'; its fields are flowRunId, state, transitionId"),
        ({"flowRunId": "r", "state": "Running", "timestamp": 1.0}, "missing field 'transition_id'"),
        ({"flowRunId": "r", "state": "Done", "transitionId": "x", "timestamp": 1.0}, "unknown state 'Done'"),
        ({"flowRunId": "r", "state": "Running", "transitionId": "x", "timestamp": "soon"}, "'timestamp' must be"),
        (["flowRunId", "r"], "must be a JSON object, got list"),
    ],
)  # fmt: skip
def test_a_wrong_task_state_is_refused_naming_what_is_wrong(value: object, said: str) -> None:
    with pytest.raises(RecordError, match=said):
        read("TaskRunStateInput", value)


def test_documents_written_for_the_input_types_still_validate() -> None:
    for document in (
        "mutation($s: [TaskRunStateInput!]!) { setTaskRunStates(states: $s) { id ok version state error } }",
        "mutation($l: [LogInput!]!) { writeRunLogs(logs: $l) }",
    ):
        assert graphql.validate(SCHEMA, graphql.parse(document)) == []


def states(run_id: str, n: int, state: str, ids: list[str]) -> list[StateRecord]:
    return [
        StateRecord(flow_run_id=run_id, state=state, transition_id=new_id(), timestamp=time.time(),
                    task_run_id=ids[i], task="a")
        for i in range(n)
    ]  # fmt: skip


def test_a_batch_of_task_states_costs_the_statements_of_one(tmp_path: Path) -> None:
    async def go() -> dict[str, object]:
        engine, sessions, tenant_id = await team_database(tmp_path)
        async with sessions.begin() as session:
            flow, version, _ = await register_flow(
                session, tenant_id, FlowSpec("f", STRUCTURE, None, [], STORAGE)
            )
            run, _ = await run_service.create_flow_run(session, tenant_id, flow, version=version)
        statements: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        out: dict[str, object] = {}
        ids = [new_id() for _ in range(200)]
        for label, batch in (
            ("one new", states(run.id, 1, "Running", ids)),
            ("199 new", states(run.id, 200, "Running", ids)[1:]),
            ("200 changed", states(run.id, 200, "Success", ids)),
        ):
            statements.clear()
            async with sessions.begin() as session:
                results = await set_task_run_states(SessionTaskRuns(session), tenant_id, batch)
            out[label] = (len(statements), all(r.ok for r in results))
        async with sessions() as session:
            out["rows"] = (await session.execute(select(func.count()).select_from(TaskRun))).scalar_one()
            out["done"] = (
                await session.execute(select(func.count()).where(TaskRun.state == "Success"))
            ).scalar_one()
            out["journal"] = (await session.execute(select(func.count()).select_from(RunEvent))).scalar_one()
        await engine.dispose()
        return out

    out = run_in_own_loop(go())
    # owning execution, task rows, insert, journal counter, journal rows
    assert out["one new"] == (5, True)
    assert out["199 new"] == (5, True)
    # owning execution, task rows, re-delivery check, one executemany update, counter, journal rows
    assert out["200 changed"] == (6, True)
    assert out["rows"] == 200
    assert out["done"] == 200
    assert out["journal"] == 1 + 400  # the run's Scheduled, then every accepted change
