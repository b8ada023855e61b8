"""Where task-run state writes read their rows and store what was decided: two stores, one rule.

``transitions.set_task_run_states`` decides every change (``decide`` and the effects table);
a store gives it what it decides on and keeps what it decided:

* ``SessionTaskRuns``: the SQLAlchemy session's statements in its transaction: the owning runs
  share-locked to the commit, the task rows, the recorded transitions; the journal is written
  when the session commits (SQLite, and any caller already inside a session's transaction);
* ``PostgresTaskRuns``: on PostgreSQL, the driver's own connection (from the engine's pool)
  and two statements, with no transaction block around them for a few changes. One read,
  unlocked, gives the owning runs' executions, the task rows and the transitions already
  recorded. One write checks that what the read saw still holds (the runs share-locked at the
  executions read, the task rows locked at the versions read), stores the rows, then takes the
  tenant's journal counter and appends the journal (``journal.postgres_append``), and aborts
  as a whole if anything moved (``StaleRows``): the caller decides again on a fresh read
  (``record_task_run_states``). ``KnownRows`` lets the read be skipped for a task run this
  process wrote last: only ever a guess, which the write checks.

The single owner of the run record holds as before: the share lock is held from the check to
the write's commit, so a claim or release never commits in between, and a row another writer
moved is never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import String, insert, update
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.sql.expression import bindparam

from nbflow.core.states import FINISHED_TYPES
from nbflow.server.db import PerDialect, one_of
from nbflow.server.models import TaskRun
from nbflow.server.pgdriver import BEGIN_CUSTOM_PLANS, CUSTOM_PLAN_FROM, Positional, is_stale, pooled_driver
from nbflow.server.services import journal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from nbflow.core.record import StateRecord


@dataclass
class Seen:
    """What a batch of task-run changes is decided on: each named run's owning execution (runs
    of other tenants and unknown ids left out), the task rows by id (of any tenant: an id
    another tenant uses must be refused, not collide) and the transition ids already stored."""

    runs: dict[str, int]
    rows: dict[str, dict[str, Any]]
    recorded: set[str]
    #: Taken from what this process last wrote, not read: good enough to accept changes on
    #: (the write checks it), never to refuse or acknowledge one (``read(fresh=True)`` then).
    assumed: bool = False


class StaleRows(Exception):
    """A task row changed between the read and the write: nothing of the batch was stored."""


class TaskRunStore(Protocol):
    """Reads what task-run changes are decided on and stores the outcome atomically."""

    async def read(self, tenant_id: str, changes: list[StateRecord], *, fresh: bool = False) -> Seen:
        """The owning executions, task rows and recorded transitions (``fresh``: from the
        database, not from what this process knows)."""
        ...

    async def write(
        self, tenant_id: str, rows: list[dict[str, Any]], new: set[str], accepted: list[StateRecord]
    ) -> None:
        """Store the changed task rows (``new`` names those to insert) and journal ``accepted``."""
        ...


# -- the SQLAlchemy session ---------------------------------------------------------------


class SessionTaskRuns:
    """Task-run reads and writes through a SQLAlchemy session (its transaction, its journal)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def read(self, tenant_id: str, changes: list[StateRecord], *, fresh: bool = False) -> Seen:  # noqa: ARG002
        """Three statements: the owning runs (locked to the commit), the task rows, the
        recorded transitions (always fresh)."""
        from nbflow.server.services.transitions import owning_executions

        runs = await owning_executions(self.session, tenant_id, {c.flow_run_id for c in changes})
        connection = await self.session.connection()
        found = await connection.execute(
            _TASK_ROWS.on(connection), {"ids": list({c.task_run_id or "" for c in changes})}
        )
        rows = {r["id"]: dict(r) for r in found.mappings()}
        # Only a change to an existing task run can be a re-delivery: a recorded change made its row.
        again = [c.transition_id for c in changes if c.task_run_id in rows]
        recorded = await journal.recorded_transitions(self.session, tenant_id, again) if again else set()
        return Seen(runs, rows, recorded)

    async def write(
        self, tenant_id: str, rows: list[dict[str, Any]], new: set[str], accepted: list[StateRecord]
    ) -> None:
        """An insert of the new rows, one executemany update of the others; the journal at commit."""
        connection = await self.session.connection()
        inserted = [row for row in rows if row["id"] in new]
        if inserted:
            await connection.execute(_INSERT_TASK_RUNS, inserted)
        updated = [
            {"row_id": row["id"], **{f"new_{k}": row[k] for k in _CHANGED}}
            for row in rows
            if row["id"] not in new
        ]
        if updated:
            await connection.execute(_UPDATE_TASK_RUN, updated)
        journal.append(self.session, tenant_id, accepted)


# Statements are built once: building one costs more than running it (SQLAlchemy's coercions and
# cache key per call, about 0.5 ms on this project's reference machine against 0.2 ms to run it).
_CHANGED = (
    "state",
    "state_message",
    "attempt",
    "version",
    "start_time",
    "end_time",
    "execution",
    "result_ref",
)
_INSERT_TASK_RUNS = insert(TaskRun.__table__)
# Guarded by the version read before: a concurrent writer makes this a no-op, not a lost update.
_UPDATE_TASK_RUN = (
    update(TaskRun.__table__)
    .where(TaskRun.id == bindparam("row_id"), TaskRun.version < bindparam("new_version"))
    .values({k: bindparam(f"new_{k}") for k in _CHANGED})
)
_TASK_ROWS = PerDialect(
    lambda postgres: TaskRun.__table__.select().where(one_of(TaskRun.id, "ids", postgres=postgres))
)


# -- PostgreSQL, on the driver's connection ------------------------------------------------


_TASK_COLUMNS = tuple(c.name for c in TaskRun.__table__.columns)
#: What a row of the read is (its ``kind`` column).
_RUN, _TASK, _RECORDED = 0, 1, 2


def _array_type(name: str) -> str:
    column = TaskRun.__table__.c[name]
    # Strings as VARCHAR without a length: an explicit cast to VARCHAR(n) would cut an over-long
    # value silently, where the column's own assignment refuses it.
    if isinstance(column.type, String):
        return "VARCHAR[]"
    return f"{column.type.compile(dialect=pg_asyncpg.dialect())}[]"


def _read_statement() -> Positional:
    # One result for three questions, told apart by ``kind``: a run (its id and execution), a
    # task row (every column), a recorded transition (its id). Nothing is locked: the write
    # checks what it relies on.
    #
    # Each key is looked up on its own (a LATERAL subquery with LIMIT 1 per key, equality on
    # a unique index's columns; a run by its id alone, its tenant compared after): the only
    # plan that fits whatever the tables' size. With ``= ANY(array)`` instead, a generic plan
    # made while the tables were young read task_runs whole and went through the tenant's
    # runs and journal by their tenant prefix: 4.3 ms and 447 pages at 20,000 journal rows,
    # until autovacuum's ANALYZE.
    columns = ", ".join(f"t.{name}" for name in _TASK_COLUMNS)

    def padded(values: dict[str, str]) -> str:
        return ", ".join(values.get(name, "NULL") for name in _TASK_COLUMNS)

    def each(keys: str, lookup: str, alias: str) -> str:
        return f"FROM unnest(CAST(:{keys} AS VARCHAR[])) AS want(key) CROSS JOIN LATERAL ({lookup} LIMIT 1) AS {alias}"

    return Positional(
        f"SELECT {_TASK} AS kind, {columns} "
        + each("task_run_ids", "SELECT * FROM task_runs WHERE task_runs.id = want.key", "t")
        + f" UNION ALL SELECT {_RUN}, {padded({'id': 'f.id', 'execution': 'f.execution'})} "
        + each("run_ids", "SELECT id, tenant_id, execution FROM flow_runs WHERE flow_runs.id = want.key", "f")
        + " WHERE f.tenant_id = :tenant"
        + f" UNION ALL SELECT {_RECORDED}, {padded({'id': 'e.transition_id'})} "
        + journal.postgres_recorded("transition_ids", "e")
    )


def owning_runs_share_locked() -> str:
    """The CTE ``runs``: the owning runs of ``:run_ids`` still at ``:run_executions`` (and of
    ``:tenant``), share-locked to the commit, so a claim or release waits and never commits
    between the check and the write. The ids must come sorted: they are locked in that order,
    and two writers locking shared runs in one order cannot deadlock."""
    # One look-up per key (LATERAL, LIMIT 1) by the primary key alone: with ``= ANY``, or with
    # the tenant beside the id, a generic plan made while flow_runs was young went through the
    # tenant's runs by their tenant index. A row locked here is the newest version, so the
    # tenant and execution are compared after the lock.
    return (
        "runs AS (SELECT f.id FROM unnest(CAST(:run_ids AS VARCHAR[]), CAST(:run_executions AS INTEGER[])) "
        "AS e(id, execution) CROSS JOIN LATERAL (SELECT id, tenant_id, execution FROM flow_runs "
        "WHERE flow_runs.id = e.id LIMIT 1 FOR SHARE) AS f "
        "WHERE f.tenant_id = :tenant AND f.execution = e.execution)"
    )


def _write_statement() -> Positional:
    # In the order its locks are taken:
    # 1. ``runs``: the owning runs still at the executions read, share-locked (ids in order)
    #    to the commit: a claim or release waits, and never commits between check and write;
    # 2. ``held``: the task rows read, still at the versions read, locked for the update (ids
    #    in order; one look-up per key, as in the read);
    # 3. ``checked``: both complete, or the statement aborts (``nbflow_unless_stale``);
    # 4. ``written``: the task rows. A new row that another writer inserted meanwhile is a
    #    conflict on a row not held: left alone, so the count falls short and the statement
    #    aborts at the end;
    # 5. the journal, whose counter waits for ``written`` (``journal.postgres_append``); a
    #    transition stored meanwhile (a re-delivery racing its original) is skipped there, so
    #    that count falls short too.
    columns = ", ".join(_TASK_COLUMNS)
    arrays = ", ".join(f"CAST(:row_{name} AS {_array_type(name)})" for name in _TASK_COLUMNS)
    changed = ", ".join(f"{name} = EXCLUDED.{name}" for name in _CHANGED)
    taken, appended = journal.postgres_append(after="written")
    return Positional(
        f"WITH {owning_runs_share_locked()}, "
        "held AS (SELECT t.id FROM unnest(CAST(:held_ids AS VARCHAR[]), CAST(:held_versions AS INTEGER[])) "
        "AS h(id, version) CROSS JOIN LATERAL (SELECT id FROM task_runs "
        "WHERE task_runs.id = h.id AND task_runs.version = h.version LIMIT 1 FOR UPDATE) AS t), "
        "checked AS (SELECT nbflow_unless_stale("
        "(SELECT count(*) FROM runs) = :n_runs AND (SELECT count(*) FROM held) = :n_held) AS ok), "
        f"written AS (INSERT INTO task_runs ({columns}) SELECT r.* FROM unnest({arrays}) AS r({columns}) "
        "WHERE (SELECT ok FROM checked) "
        f"ON CONFLICT (id) DO UPDATE SET {changed} WHERE task_runs.id = ANY(CAST(:held_ids AS VARCHAR[])) "
        "RETURNING 1), "
        f"{taken}, appended AS ({appended} RETURNING 1) "
        "SELECT nbflow_unless_stale((SELECT count(*) FROM written) = :n_rows "
        "AND (SELECT count(*) FROM appended) = :n)"
    )


_READ = _read_statement()
_WRITE = _write_statement()


class KnownRows:
    """The task rows and run executions this process wrote last, so that the next change of a
    task run can be decided without reading them again (one round trip instead of two).

    Only ever a guess: the write checks every run and row it relies on, and a guess another
    writer (a replica, recovery, a new claim) made wrong aborts the write, which drops the
    guess and reads. A task run never seen is guessed new; a transition, never recorded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.executions: OrderedDict[tuple[str, str], int] = OrderedDict()

    def seen(self, tenant_id: str, changes: list[StateRecord]) -> Seen | None:
        """What these changes would be decided on, if every run among them is known."""
        runs = {}
        for change in changes:
            execution = self.executions.get((tenant_id, change.flow_run_id))
            if execution is None:
                return None
            runs[change.flow_run_id] = execution
        rows = {}
        for change in changes:
            row = self.rows.get(change.task_run_id or "")
            if row is not None:
                if row["tenant_id"] != tenant_id:
                    return None
                rows[row["id"]] = dict(row)  # deciding updates the rows it is given
        return Seen(runs, rows, set(), assumed=True)

    def remember(self, tenant_id: str, rows: list[dict[str, Any]], runs: dict[str, int]) -> None:
        """Rows and executions as a committed write left them; a finished task run's row is
        dropped instead (its next change, if any, is a restart's: read it then)."""
        for row in rows:
            if row["state"] in _FINISHED:
                self.rows.pop(row["id"], None)
                continue
            self.rows[row["id"]] = dict(row)
            self.rows.move_to_end(row["id"])
        for run_id, execution in runs.items():
            self.executions[(tenant_id, run_id)] = execution
            self.executions.move_to_end((tenant_id, run_id))
        for known in (self.rows, self.executions):
            while len(known) > self.limit:
                known.popitem(last=False)

    def forget(self, tenant_id: str, changes: list[StateRecord]) -> None:
        """Drop every guess about these changes' runs and rows."""
        for change in changes:
            self.rows.pop(change.task_run_id or "", None)
            self.executions.pop((tenant_id, change.flow_run_id), None)


#: How many unfinished task rows (and runs) a process remembers per database (about 1 KB each).
KNOWN_LIMIT = 10_000
_FINISHED = frozenset(t.value for t in FINISHED_TYPES)
_KNOWN: WeakKeyDictionary[Any, KnownRows] = WeakKeyDictionary()


def known_rows(engine: AsyncEngine) -> KnownRows:
    """This process's guesses about the database of ``engine``."""
    known = _KNOWN.get(engine.sync_engine)
    if known is None:  # made once per engine, not on every request
        known = _KNOWN[engine.sync_engine] = KnownRows(KNOWN_LIMIT)
    return known


class PostgresTaskRuns:
    """Task-run reads and writes in two statements on an asyncpg connection.

    One change, or a few, runs without a transaction block: each statement is its own
    transaction, and the write's checks make it safe (two round trips, or the write alone
    when ``KnownRows`` has the rows). A larger batch runs in a transaction the read begins
    (``begun``) and ``task_run_store`` ends."""

    def __init__(self, driver: Any, known: KnownRows) -> None:
        self.driver = driver
        self.known = known
        self.begun = False
        self.executions: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.changes: list[StateRecord] = []

    async def _begin(self) -> None:
        await self.driver.execute(BEGIN_CUSTOM_PLANS)
        self.begun = True

    async def read(self, tenant_id: str, changes: list[StateRecord], *, fresh: bool = False) -> Seen:
        """The owning runs, task rows and recorded transitions in one statement (no locks),
        or, for a few changes of runs this process wrote last, what it knows of them."""
        self.changes = changes
        few = len(changes) <= CUSTOM_PLAN_FROM
        if few and not fresh:
            known = self.known.seen(tenant_id, changes)
            if known is not None:
                self._expect(known)
                return known
        if not few and not self.begun:
            await self._begin()
        found = await self.driver.fetch(
            _READ.sql,
            *_READ.args({
                "tenant": tenant_id,
                "run_ids": list({c.flow_run_id for c in changes}),
                "task_run_ids": list({c.task_run_id or "" for c in changes}),
                "transition_ids": [c.transition_id for c in changes],
            }),
        )  # fmt: skip
        seen = Seen({}, {}, set())
        for record in found:
            kind = record["kind"]
            if kind == _TASK:
                row = dict(record)
                del row["kind"]
                seen.rows[row["id"]] = row
            elif kind == _RUN:
                seen.runs[record["id"]] = record["execution"]
            elif kind == _RECORDED:
                seen.recorded.add(record["id"])
        self._expect(seen)
        return seen

    def _expect(self, seen: Seen) -> None:
        # What the write must find unchanged (the rows themselves change as changes apply).
        self.executions = dict(seen.runs)
        self.versions = {row_id: row["version"] for row_id, row in seen.rows.items()}

    async def write(
        self,
        tenant_id: str,
        rows: list[dict[str, Any]],
        new: set[str],  # noqa: ARG002 - an upsert needs no telling
        accepted: list[StateRecord],
    ) -> None:
        """The checks, the task rows and the journal in one statement; ``StaleRows`` if a run
        or row moved since the read (nothing of it is then stored)."""
        rows = sorted(rows, key=lambda row: row["id"])  # two writers lock shared rows in one order
        run_ids = sorted({row["flow_run_id"] for row in rows})
        held = [row["id"] for row in rows if row["id"] in self.versions]
        entries = journal.rows_of(tenant_id, accepted)
        values = {f"row_{name}": [row[name] for row in rows] for name in _TASK_COLUMNS}
        values |= {
            "tenant": tenant_id, "n_rows": len(rows),
            "run_ids": run_ids, "run_executions": [self.executions[i] for i in run_ids], "n_runs": len(run_ids),
            "held_ids": held, "held_versions": [self.versions[i] for i in held], "n_held": len(held),
            "n": len(entries), **journal.journal_columns(entries),
        }  # fmt: skip
        try:
            await self.driver.execute(_WRITE.sql, *_WRITE.args(values))
        except Exception as exc:
            self.known.forget(tenant_id, self.changes)
            if is_stale(exc):
                raise StaleRows(str(exc)) from None
            raise
        if self.begun:  # not committed yet: what others may see is read again next time
            self.known.forget(tenant_id, self.changes)
        else:
            self.known.remember(tenant_id, rows, {i: self.executions[i] for i in run_ids})


@contextlib.asynccontextmanager
async def task_run_store(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[TaskRunStore]:
    """A store whose writes are committed when the block ends and undone if it raises:
    PostgreSQL gets ``PostgresTaskRuns`` (each statement atomic, a batch in a transaction),
    SQLite a session's ``SessionTaskRuns`` (in a transaction)."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        async with sessions.begin() as session:
            yield SessionTaskRuns(session)
        return
    async with pooled_driver(engine) as driver:
        store = PostgresTaskRuns(driver, known_rows(engine))
        try:
            yield store
        except BaseException as exc:
            # A cancelled request's connection is dropped by pooled_driver, not rolled back.
            if store.begun and not isinstance(exc, asyncio.CancelledError) and not driver.is_closed():
                await driver.execute("ROLLBACK")
            raise
        if store.begun:
            await driver.execute("COMMIT")
