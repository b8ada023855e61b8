"""Log-line writes (``services/logs.record_logs``): on PostgreSQL one statement on the driver's
connection, on SQLite the session's path; the same answers, errors and journal on both, and
nothing lost or doubled when writers race."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import ClaimedRun, claimed_run, on_postgres, run_in_own_loop

from nbflow.core.record import MAX_MESSAGE, LogRecord
from nbflow.server.errors import RequestError
from nbflow.server.models import RunEvent, Tenant
from nbflow.server.services import logs

pytestmark = pytest.mark.integration


def line(
    team: ClaimedRun, seq: int, message: str = "", *, run_id: str | None = None, execution: int = 2
) -> LogRecord:
    return LogRecord(
        flow_run_id=run_id or team.run_id, level="INFO", message=message or f"line {seq}",
        timestamp=1000.0 + seq, task="a", execution=execution, seq=seq,
    )  # fmt: skip


async def journal(team: ClaimedRun) -> list[tuple[int, int | None, int, str]]:
    """The tenant's log lines in feed order: (position, seq, execution, message)."""
    async with team.sessions() as session:
        rows = await session.execute(
            select(RunEvent.position, RunEvent.seq, RunEvent.execution, RunEvent.message)
            .where(RunEvent.tenant_id == team.tenant_id, RunEvent.kind == "log")
            .order_by(RunEvent.position)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def counter(team: ClaimedRun) -> int:
    async with team.sessions() as session:
        tenant = await session.get(Tenant, team.tenant_id)
        assert tenant is not None
        return tenant.feed_position


async def every_kind_of_batch(url: str) -> tuple[list[Any], list[Any]]:
    """One batch of each kind a flow process or a client can send, in order: the answers (a
    count, or the error's type and message) and the journal's lines in feed order after
    (positions left out: a re-delivered line may leave a gap on PostgreSQL)."""
    team = await claimed_run(url)
    other = await claimed_run(url, "other")
    batches = [
        [line(team, 0), line(team, 1), line(team, 2)],  # new
        [line(team, 0), line(team, 1), line(team, 2)],  # re-delivered whole
        [line(team, 2), line(team, 3), line(team, 3, "a repeat"), line(team, 4)],  # mixed, repeated
        [line(team, 5, execution=1)],  # of a superseded execution
        [line(team, 6), line(team, 7, execution=1)],  # one line of it spoils the batch
        [line(team, 8, run_id="no-such-run")],
        [line(team, 9), line(team, 10, run_id=other.run_id)],  # another tenant's run
        [line(team, 11, "x" * (MAX_MESSAGE + 10))],  # cut to the record's limit
        [],
    ]
    answers: list[Any] = []
    for batch in batches:
        try:
            answers.append(await logs.record_logs(team.sessions, team.tenant_id, batch))
        except RequestError as exc:
            message = str(exc).replace(other.run_id, "<other>").replace(team.run_id, "<run>")
            answers.append((type(exc).__name__, message))
    return answers, [stored[1:] for stored in await journal(team)]


def test_postgres_gives_the_answers_and_journal_the_session_path_gives(tmp_path: Path) -> None:
    on_sqlite = run_in_own_loop(every_kind_of_batch(f"sqlite+aiosqlite:///{tmp_path / 'nbflow.db'}"))
    assert on_postgres(every_kind_of_batch) == on_sqlite
    answers, lines = on_sqlite
    assert answers[:3] == [3, 0, 2]
    assert answers[3][0] == answers[4][0] == "Conflict"
    assert "superseded execution" in answers[3][1]
    assert answers[5] == ("NotFound", "no flow run 'no-such-run' in this tenant")
    assert answers[6] == ("NotFound", "no flow run '<other>' in this tenant")
    assert answers[7:] == [1, 0]
    assert [seq for seq, _, _ in lines] == [0, 1, 2, 3, 4, 11]
    assert lines[3][2] == "line 3"  # the first of a repeated line is kept
    assert len(lines[5][2]) <= MAX_MESSAGE and "cut" in lines[5][2]


def test_a_batch_takes_consecutive_positions_in_its_order_and_a_redelivery_stores_nothing() -> None:
    async def go(url: str) -> None:
        team = await claimed_run(url)
        before = await counter(team)
        batch = [line(team, s) for s in (5, 3, 9, 3, 1)]  # 3 twice: the first is kept
        assert await logs.record_logs(team.sessions, team.tenant_id, batch) == 4
        stored = await journal(team)
        assert [seq for _, seq, _, _ in stored] == [5, 3, 9, 1]
        assert [position for position, _, _, _ in stored] == list(range(before + 1, before + 5))
        assert await counter(team) == before + 4
        again = [line(team, s, "again") for s in (1, 9)]
        assert await logs.record_logs(team.sessions, team.tenant_id, again) == 0
        assert await journal(team) == stored
        # The next line still comes after every line before it.
        assert await logs.record_logs(team.sessions, team.tenant_id, [line(team, 10)]) == 1
        last = (await journal(team))[-1]
        assert last[1] == 10 and last[0] > stored[-1][0]

    on_postgres(go)


def test_postgres_writes_lines_without_the_session_path(monkeypatch: pytest.MonkeyPatch) -> None:
    async def session_path(*_: Any) -> int:
        raise AssertionError("the session's path was taken")

    async def go(url: str) -> None:
        team = await claimed_run(url)
        monkeypatch.setattr(logs, "write_logs", session_path)
        assert await logs.record_logs(team.sessions, team.tenant_id, [line(team, 0), line(team, 1)]) == 2
        assert await logs.record_logs(team.sessions, team.tenant_id, [line(team, 0)]) == 0
        with pytest.raises(AssertionError, match="session's path"):  # refusals are told apart there
            await logs.record_logs(team.sessions, team.tenant_id, [line(team, 2, execution=1)])

    on_postgres(go)


def test_writers_racing_with_the_same_and_overlapping_lines_store_each_line_once() -> None:
    async def go(url: str) -> tuple[list[int], list[Any]]:
        team = await claimed_run(url)
        others = [team.elsewhere(url) for _ in range(3)]  # as other server processes
        batches = [[line(team, s) for s in range(start, start + 20)] for start in (0, 0, 10, 10, 5, 15)]
        writers = [team, *others]
        answers = await asyncio.gather(
            *(
                logs.record_logs(writers[i % len(writers)].sessions, team.tenant_id, batch)
                for i, batch in enumerate(batches)
            )
        )
        return list(answers), await journal(team)

    answers, stored = on_postgres(go)
    assert sum(answers) == 35
    assert sorted(seq for _, seq, _, _ in stored) == list(range(35))


def test_lines_wait_for_a_claim_in_flight_and_are_then_refused() -> None:
    """A new claim that commits while lines of the old execution are on their way: the lines
    wait for it, then are refused, never stored under the new owner."""
    from nbflow.core.record import StateRecord, new_id
    from nbflow.server.services.runs import get_flow_run
    from nbflow.server.services.transitions import set_flow_run_state

    async def move(session: Any, team: ClaimedRun, state: str) -> None:
        run = await get_flow_run(session, team.tenant_id, team.run_id)
        change = StateRecord(
            flow_run_id=team.run_id, state=state, transition_id=new_id(), timestamp=time.time()
        )
        assert (await set_flow_run_state(session, team.tenant_id, change, version=run.version)).ok

    async def go(url: str) -> tuple[Any, bool, list[Any]]:
        team = await claimed_run(url)
        async with team.sessions.begin() as session:
            await move(session, team, "Scheduled")  # released: execution 2 still owns the run
        async with team.sessions.begin() as session:
            await move(session, team, "Submitted")  # claimed again: a new execution
            # The old execution's lines are sent while the claim's transaction is open.
            writing = asyncio.ensure_future(logs.record_logs(team.sessions, team.tenant_id, [line(team, 0)]))
            await asyncio.sleep(0.3)
            waited = not writing.done()
        try:
            answer: Any = await writing
        except RequestError as exc:
            answer = type(exc).__name__
        return answer, waited, await journal(team)

    assert on_postgres(go) == ("Conflict", True, [])


def test_the_write_looks_up_no_stored_line_whatever_its_plan() -> None:
    """Stored lines are skipped by the insert's unique index, not looked up first: a look-up's
    plan made while the table was young went through every line of the run, and PostgreSQL
    keeps such a plan for the prepared statement until the table is analyzed."""
    from nbflow.server.pgdriver import pooled_driver
    from nbflow.server.services import journal as journal_service

    async def go(url: str) -> str:
        team = await claimed_run(url)
        lines = [line(team, 0)]
        values = {
            "tenant": team.tenant_id, "run_ids": [team.run_id], "run_executions": [2], "n_runs": 1,
            **journal_service.journal_columns(journal_service.rows_of(team.tenant_id, lines)),
        }  # fmt: skip
        async with pooled_driver(team.sessions.kw["bind"]) as driver:
            await driver.execute("SET plan_cache_mode = force_generic_plan")
            try:
                plan = await driver.fetch("EXPLAIN " + logs._WRITE.sql, *logs._WRITE.args(values))
            finally:
                await driver.execute("RESET plan_cache_mode")
        return "\n".join(row[0] for row in plan)

    plan = on_postgres(go)
    assert "Insert on run_events" in plan
    assert "on run_events" not in plan.replace("Insert on run_events", ""), plan
