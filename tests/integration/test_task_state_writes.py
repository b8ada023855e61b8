"""Task-run state writes on PostgreSQL: one unlocked read, one checked write (``taskstore``),
and the write alone when the process knows the rows from its own last write.

What a user of the run record relies on, tested where it can break: writers racing each other
on one task run, a re-delivery racing its original, a row that moves between the read and the
write, and the same answers, rows and journal as the SQLite store for every kind of change.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import (
    ClaimedRun,
    cached_plan,
    claimed_run,
    on_postgres,
    run_in_own_loop,
)

from nbflow.core.record import StateRecord, new_id
from nbflow.core.states import StateType
from nbflow.server.models import FlowRun, RunEvent, TaskRun
from nbflow.server.services import transitions
from nbflow.server.services.runs import get_flow_run
from nbflow.server.services.taskstore import PostgresTaskRuns
from nbflow.server.services.transitions import record_task_run_states, server_change, set_flow_run_state

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


class Team(ClaimedRun):
    """A claimed run with what these tests read back: its journal and its task rows."""

    async def journal(self) -> list[tuple[str | None, str | None]]:
        """The run's task-state records in feed order: (task run id, state)."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(RunEvent.task_run_id, RunEvent.state)
                .where(RunEvent.flow_run_id == self.run_id, RunEvent.task_run_id.is_not(None))
                .order_by(RunEvent.position)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    async def task_row(self, task_run_id: str) -> tuple[str, int]:
        async with self.sessions() as session:
            row = await session.get(TaskRun, task_run_id)
            assert row is not None
            return row.state, row.version


async def make_team(url: str, name: str = "team") -> Team:
    made = await claimed_run(url, name)
    return Team(made.sessions, made.tenant_id, made.run_id)


def test_a_redelivery_racing_its_original_is_stored_once() -> None:
    async def go(url: str) -> tuple[list[bool], list[tuple[str | None, str | None]], tuple[str, int]]:
        team = await make_team(url)
        task = new_id()
        same = team.change(task, "Running")
        answers = await asyncio.gather(
            *(record_task_run_states(team.sessions, team.tenant_id, [same]) for _ in range(8))
        )
        return [a[0].ok for a in answers], await team.journal(), await team.task_row(task)

    oks, journal, row = on_postgres(go)
    assert oks == [True] * 8  # one accepted, seven acknowledged
    assert len(journal) == 1
    assert row == ("Running", 1)


def test_concurrent_writers_of_one_run_lose_nothing_and_journal_every_change() -> None:
    async def go(url: str) -> tuple[list[bool], list[tuple[str | None, str | None]], list[tuple[str, int]]]:
        team = await make_team(url)
        tasks = [new_id() for _ in range(12)]

        async def lifecycle(task: str) -> list[bool]:
            oks = []
            for state in ("Running", "Success"):
                (answer,) = await record_task_run_states(
                    team.sessions, team.tenant_id, [team.change(task, state)]
                )
                oks.append(answer.ok)
            return oks

        answers = await asyncio.gather(*(lifecycle(t) for t in tasks))
        rows = [await team.task_row(t) for t in tasks]
        return [ok for a in answers for ok in a], await team.journal(), rows

    oks, journal, rows = on_postgres(go)
    assert all(oks)
    assert len(journal) == 24
    assert rows == [("Success", 2)] * 12
    for task, state in journal:  # each task run's records in its own order
        if state == "Success":
            assert (task, "Running") in journal[: journal.index((task, state))]


def test_a_row_that_moved_between_the_read_and_the_write_is_decided_again() -> None:
    async def go(
        url: str,
    ) -> tuple[list[bool], list[str | None], list[tuple[str | None, str | None]], tuple[str, int]]:
        team = await make_team(url)
        task = new_id()
        assert (await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, "Running")]))[
            0
        ].ok
        moved = False
        real_write = PostgresTaskRuns.write

        async def write_after_another_writer(self: PostgresTaskRuns, *args: Any) -> None:
            nonlocal moved
            if not moved:  # another writer fails the task run between this read and this write
                moved = True
                other = [team.change(task, "Failed", message="killed")]
                assert (await record_task_run_states(team.sessions, team.tenant_id, other))[0].ok
            await real_write(self, *args)

        PostgresTaskRuns.write = write_after_another_writer  # type: ignore[method-assign]
        try:
            answers = await record_task_run_states(
                team.sessions, team.tenant_id, [team.change(task, "Success")]
            )
        finally:
            PostgresTaskRuns.write = real_write  # type: ignore[method-assign]
        return (
            [a.ok for a in answers],
            [a.error for a in answers],
            await team.journal(),
            await team.task_row(task),
        )

    oks, errors, journal, row = on_postgres(go)
    # Decided again on Failed: a finished task run cannot succeed, and nothing was overwritten.
    assert oks == [False]
    assert "Failed" in (errors[0] or "")
    assert [state for _, state in journal] == ["Running", "Failed"]
    assert row == ("Failed", 2)


def test_a_batch_that_keeps_finding_its_rows_moved_is_answered_try_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go(url: str) -> str:
        team = await make_team(url)
        task = new_id()
        assert (await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, "Running")]))[
            0
        ].ok
        real_write = PostgresTaskRuns.write

        async def always_moved(self: PostgresTaskRuns, *args: Any) -> None:
            self.versions = {k: v - 1 for k, v in self.versions.items()}  # as if read before a write
            await real_write(self, *args)

        monkeypatch.setattr(PostgresTaskRuns, "write", always_moved)
        with pytest.raises(transitions.RequestError) as caught:
            await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, "Success")])
        assert caught.value.code == "TRY_AGAIN"
        assert await team.task_row(task) == ("Running", 1)  # nothing of any attempt was stored
        return str(caught.value)

    message = on_postgres(go)
    assert "send it again" in message


def scripted_batches(team: Team, other_run: str) -> list[list[StateRecord]]:
    """Every kind of answer the write path gives, in three calls."""
    a, b, c, taken = "task-a", "task-b", "task-c", "task-taken"
    first = [
        team.change(a, "Running", transition_id="t1"),
        team.change(a, "Success", transition_id="t2", result_ref="s3://bucket/a#sha256=00"),
        team.change(b, "Running", transition_id="t3"),
        team.change(c, "Running", transition_id="t4", execution=1),  # a superseded execution
        team.change(taken, "Running", transition_id="t5"),
    ]
    second = [
        team.change(a, "Success", transition_id="t2"),  # a re-delivery: acknowledged
        team.change(a, "Running", transition_id="t6"),  # a finished task run cannot run again
        team.change(b, "Retrying", transition_id="t7", attempt=1, message="flaky"),
        team.change(b, "Running", transition_id="t8", attempt=1),
        StateRecord(flow_run_id=other_run, task_run_id="task-x", task="x", state="Running",
                    transition_id="t9", timestamp=time.time(), execution=2),  # another tenant's run
    ]  # fmt: skip
    third = [team.change(b, "Success", transition_id="t10"), team.change(b, "Success", transition_id="t10")]
    return [first, second, third]


async def answers_rows_and_journal(team: Team, other_run: str) -> tuple[Any, ...]:
    answers = []
    for batch in scripted_batches(team, other_run):
        for answer in await record_task_run_states(team.sessions, team.tenant_id, batch):
            error = answer.error.replace(other_run, "<other run>") if answer.error else None
            answers.append((answer.id, answer.ok, answer.version, answer.state, error))
    async with team.sessions() as session:
        found = await session.execute(
            select(TaskRun.id, TaskRun.state, TaskRun.version, TaskRun.attempt, TaskRun.state_message,
                   TaskRun.result_ref, TaskRun.execution, TaskRun.start_time.is_not(None),
                   TaskRun.end_time.is_not(None)).where(TaskRun.flow_run_id == team.run_id).order_by(TaskRun.id)
        )  # fmt: skip
        rows = [tuple(r) for r in found]
    return answers, rows, await team.journal()


def test_postgres_gives_the_answers_rows_and_journal_the_sqlite_store_gives(tmp_path: Path) -> None:
    async def on(url: str) -> tuple[Any, ...]:
        team = await make_team(url)
        other = await make_team(url, "others")  # holds "task-taken" and owns the run "t9" names
        taken = other.change("task-taken", "Running")
        assert (await record_task_run_states(other.sessions, other.tenant_id, [taken]))[0].ok
        return await answers_rows_and_journal(team, other.run_id)

    on_sqlite = run_in_own_loop(on(f"sqlite+aiosqlite:///{tmp_path / 'nbflow.db'}"))
    assert on_postgres(on) == on_sqlite
    answers = on_sqlite[0]
    assert [ok for _, ok, *_ in answers] == [
        True,
        True,
        True,
        False,
        False,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
    ]


# -- what a process knows of the rows it wrote last ------------------------------------------


def another_process(team: Team, url: str) -> Team:
    """The same team seen through an engine of its own, as another server process sees it."""
    other = team.elsewhere(url)
    return Team(other.sessions, other.tenant_id, other.run_id)


def statements_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The task-state statements sent on the driver's connections from now on."""
    sent: list[str] = []
    for method in ("fetch", "execute"):
        real = getattr(asyncpg.Connection, method)

        async def counted(self: Any, query: str, *args: Any, _real: Any = real, **kw: Any) -> Any:
            sent.append(query.split(" ", 1)[0])
            return await _real(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, method, counted)
    return sent


def test_the_next_change_of_a_task_run_this_process_wrote_is_one_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go(url: str) -> tuple[list[list[str]], tuple[str, int], list[tuple[str | None, str | None]]]:
        team = await make_team(url)
        task = new_id()
        from nbflow.server.pgdriver import pooled_driver

        async with pooled_driver(team.sessions.kw["bind"]):
            pass  # the driver pool's first connection sets itself up once (the dialect's checks)
        sent = statements_sent(monkeypatch)
        per_change = []
        for state in ("Running", "Success"):
            sent.clear()
            assert (await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, state)]))[
                0
            ].ok
            per_change.append(list(sent))
        return per_change, await team.task_row(task), await team.journal()

    per_change, row, journal = on_postgres(go)
    assert per_change == [["SELECT", "WITH"], ["WITH"]]  # read and write, then the write alone
    assert row == ("Success", 2)
    assert [state for _, state in journal] == ["Running", "Success"]


def test_a_row_another_process_moved_is_read_again_not_overwritten() -> None:
    async def go(url: str) -> tuple[bool, str | None, tuple[str, int], list[str | None]]:
        team = await make_team(url)
        other = another_process(team, url)
        task = new_id()
        assert (await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, "Running")]))[
            0
        ].ok
        failed = [other.change(task, "Failed", message="killed")]
        assert (await record_task_run_states(other.sessions, other.tenant_id, failed))[0].ok
        (answer,) = await record_task_run_states(
            team.sessions, team.tenant_id, [team.change(task, "Success")]
        )
        return answer.ok, answer.error, await team.task_row(task), [s for _, s in await team.journal()]

    ok, error, row, states = on_postgres(go)
    assert not ok
    assert "from Failed to Success" in (error or "")
    assert row == ("Failed", 2)
    assert states == ["Running", "Failed"]


def test_a_redelivery_of_a_change_this_process_wrote_is_acknowledged_once() -> None:
    async def go(url: str) -> tuple[list[bool], tuple[str, int], int]:
        team = await make_team(url)
        task = new_id()
        running = team.change(task, "Running")
        oks = []
        for _ in range(3):
            oks += [a.ok for a in await record_task_run_states(team.sessions, team.tenant_id, [running])]
        return oks, await team.task_row(task), len(await team.journal())

    oks, row, records = on_postgres(go)
    assert oks == [True, True, True]
    assert row == ("Running", 1)
    assert records == 1


def test_a_zombie_this_process_knew_as_the_owner_is_refused_after_a_new_claim_elsewhere() -> None:
    async def go(url: str) -> tuple[bool, str | None, list[str | None]]:
        team = await make_team(url)
        other = another_process(team, url)
        task = new_id()
        assert (await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, "Running")]))[
            0
        ].ok
        async with other.sessions.begin() as session:  # released and claimed again elsewhere
            current = await get_flow_run(session, team.tenant_id, team.run_id)
            release = server_change(current, StateType.SCHEDULED, "resubmitted: no heartbeat")
            assert (await set_flow_run_state(session, team.tenant_id, release, version=None)).ok
        async with other.sessions.begin() as session:
            current = await get_flow_run(session, team.tenant_id, team.run_id)
            claim = StateRecord(
                flow_run_id=team.run_id, state="Submitted", transition_id=new_id(), timestamp=time.time()
            )
            assert (await set_flow_run_state(session, team.tenant_id, claim, version=current.version)).ok
        (answer,) = await record_task_run_states(
            team.sessions, team.tenant_id, [team.change(task, "Success")]
        )
        return answer.ok, answer.error, [s for _, s in await team.journal()]

    ok, error, states = on_postgres(go)
    assert not ok
    assert "superseded" in (error or "")
    assert states == ["Running"]


def test_a_write_cancelled_while_it_waits_leaves_no_connection_behind() -> None:
    async def go(url: str) -> tuple[bool, list[str], bool]:
        team = await make_team(url)
        task = new_id()
        assert (await record_task_run_states(team.sessions, team.tenant_id, [team.change(task, "Running")]))[
            0
        ].ok
        other = another_process(team, url)
        async with other.sessions.begin() as session:  # holds the run's row: the write must wait
            await session.execute(select(FlowRun.id).where(FlowRun.id == team.run_id).with_for_update())
            waiting = asyncio.create_task(
                record_task_run_states(team.sessions, team.tenant_id, [team.change(task, "Success")])
            )
            await asyncio.sleep(0.5)
            waiting.cancel()  # the client went away
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
        # Every pooled connection still answers, and nothing of the cancelled write stayed.
        (answer,) = await record_task_run_states(
            team.sessions, team.tenant_id, [team.change(task, "Success")]
        )
        async with other.sessions() as session:
            stuck = (
                await session.execute(
                    text(
                        "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
                    )
                )
            ).scalars()
            states = list(stuck)
        return answer.ok, states, await team.task_row(task) == ("Success", 2)

    ok, stuck, done = on_postgres(go)
    assert ok
    assert stuck == []
    assert done


class _Recording:
    """A driver connection that remembers the statements sent through it, with their arguments."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, sql: str, *args: Any) -> Any:
        self.sent.append((sql, args))
        return await self.driver.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.sent.append((sql, args))
        return await self.driver.fetch(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver, name)


def test_the_read_keeps_to_its_keys_when_its_plan_was_made_on_young_tables() -> None:
    """PostgreSQL keeps a prepared statement's generic plan until the table is analyzed. The
    read's plan, made while the tables were nearly empty, must still look runs and recorded
    transitions up by their keys once the tenant's journal has grown, not go through the
    tenant's runs or journal."""
    from nbflow.core.record import LogRecord
    from nbflow.server.pgdriver import pooled_driver
    from nbflow.server.services import logs, taskstore

    async def go(url: str) -> tuple[str, int]:
        team = await make_team(url)
        values = {"tenant": team.tenant_id, "run_ids": [team.run_id], "task_run_ids": [new_id()],
                  "transition_ids": [new_id(), new_id()]}  # fmt: skip
        args = taskstore._READ.args(values)
        async with pooled_driver(team.sessions.kw["bind"]) as driver:
            for _ in range(8):  # past the five runs after which the plan may be made generic
                await driver.fetch(taskstore._READ.sql, *args)
            for start in range(0, 20_000, 5_000):  # the journal grows, no ANALYZE yet
                lines = [
                    LogRecord(
                        flow_run_id=team.run_id, level="INFO", message="m", timestamp=1.0, execution=2, seq=s
                    )
                    for s in range(start, start + 5_000)
                ]
                await logs.record_logs(team.sessions, team.tenant_id, lines)
            text_plan = await cached_plan(driver, taskstore._READ.sql, args, "(ANALYZE, BUFFERS) ")
        # The top node's buffers hold its children's: the first "Buffers:" line is the whole.
        top = next(line for line in text_plan.splitlines() if "Buffers:" in line)
        return text_plan, sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", top))

    plan, hits = on_postgres(go)
    # The statement's pages, counted by PostgreSQL: a few per key, against hundreds for a walk
    # through 20,000 journal rows.
    assert hits < 100, plan


def test_the_write_keeps_to_its_keys_when_its_plan_was_made_on_young_tables() -> None:
    """The write's own generic plan, made on nearly empty tables, still finds the runs and task
    rows it locks by their primary keys after task_runs has grown: no scan of a table."""
    from nbflow.server.pgdriver import pooled_driver
    from nbflow.server.services import taskstore

    async def go(url: str) -> str:
        team = await make_team(url)
        async with pooled_driver(team.sessions.kw["bind"]) as driver:
            recording = _Recording(driver)
            for _ in range(5):  # ten writes: past the five after which the plan may be generic
                task = new_id()
                for state in ("Running", "Success"):
                    store = PostgresTaskRuns(recording, taskstore.KnownRows(100))
                    changes = [team.change(task, state)]
                    assert (await transitions.set_task_run_states(store, team.tenant_id, changes))[0].ok
            for _ in range(10):  # task_runs grows to 2,500 rows, no ANALYZE yet
                batch = []
                for _ in range(250):
                    task = new_id()
                    batch += [team.change(task, "Running"), team.change(task, "Success")]
                await record_task_run_states(team.sessions, team.tenant_id, batch)
            sql, args = next(sent for sent in reversed(recording.sent) if sent[0] == taskstore._WRITE.sql)
            return await cached_plan(driver, sql, args)

    plan = on_postgres(go)
    assert "Seq Scan" not in plan, plan
    assert "flow_runs_pkey" in plan and "task_runs_pkey" in plan, plan
