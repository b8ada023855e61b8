"""The journal: how run records become ``run_events`` rows, in one order per tenant.

Writers append records to the session's journal (``append``); when the
transaction commits, the journal takes the tenant's counter
(``UPDATE tenants SET feed_position = feed_position + n ... RETURNING``) and
inserts the rows with consecutive positions. The counter's row lock is held
from there to the commit, so a later transaction of the same tenant gets its
positions only after this one is visible: positions follow commit order and a
reader of ``position > cursor`` never skips a row that commits later. Taking
the lock last, after every other write of the transaction, keeps writers from
deadlocking on it.

Rows whose transition id or ``(flow run, execution, seq)`` is stored already
are skipped (``ON CONFLICT DO NOTHING``): a re-delivery racing its original
(and, on PostgreSQL, any re-delivered log line) leaves a gap in the positions,
never a duplicate.

Records appended inside a savepoint that is rolled back go with it: the journal
remembers its length when a savepoint begins and returns to it on rollback.

The task-state and log writers on PostgreSQL (``services/taskstore.py``,
``services/logs.py``) do not use a session: each one's write statement ends with this
module's append (``postgres_append``, ``postgres_append_lines``), the counter taken
after its other rows, as here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, event, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from nbflow.core.record import STATE, LogRecord, StateRecord, cut
from nbflow.server.db import PerDialect, one_of
from nbflow.server.models import RunEvent, Tenant

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.ext.asyncio import AsyncSession

    from nbflow.core.record import Record

_KEY = "nbflow.journal"
_MARKS = "nbflow.journal.savepoints"


class JournalSession(Session):
    """The server's session class: writes the journal of a transaction when it commits."""


def append(session: AsyncSession, tenant_id: str, records: Iterable[Record]) -> None:
    """Queue records of ``tenant_id`` to be stored when ``session`` commits, in this order."""
    pending = session.sync_session.info.setdefault(_KEY, [])
    pending.extend(_row(tenant_id, record) for record in records)


def storable(text: str) -> str:
    """``text`` within the record's message limit (NUL characters never get this far: the
    schema's ``NoNul`` extension turns them into text at the door)."""
    return cut(text, "the server")


def _row(tenant_id: str, record: Record) -> dict[str, Any]:
    common = {
        "tenant_id": tenant_id,
        "flow_run_id": record.flow_run_id,
        "task_run_id": record.task_run_id,
        "task": record.task,
        "message": storable(record.message),
        "timestamp": record.timestamp,
        "execution": record.execution,
    }
    if isinstance(record, StateRecord):
        return common | {
            "kind": STATE, "state": record.state, "previous": record.previous, "level": None,
            "attempt": record.attempt, "transition_id": record.transition_id, "seq": None,
            "result_ref": record.result_ref, "start_time": record.start_time,
        }  # fmt: skip
    return common | {
        "kind": "log", "state": None, "previous": None, "level": record.level, "attempt": 0,
        "transition_id": None, "seq": record.seq, "result_ref": None, "start_time": None,
    }  # fmt: skip


def record_of(row: RunEvent) -> Record:
    """The record a stored row holds (what the feed and the read API send)."""
    if row.kind == STATE:
        return StateRecord(
            flow_run_id=row.flow_run_id, state=row.state or "", transition_id=row.transition_id or "",
            timestamp=row.timestamp, task_run_id=row.task_run_id, task=row.task, previous=row.previous,
            message=row.message, attempt=row.attempt, execution=row.execution, result_ref=row.result_ref,
            start_time=row.start_time,
        )  # fmt: skip
    return LogRecord(
        flow_run_id=row.flow_run_id, level=row.level or "INFO", message=row.message, timestamp=row.timestamp,
        task_run_id=row.task_run_id, task=row.task, execution=row.execution, seq=row.seq or 0,
    )  # fmt: skip


@event.listens_for(JournalSession, "before_commit")
def _write(session: Session) -> None:
    pending: list[dict[str, Any]] = session.info.pop(_KEY, [])
    if not pending:
        return
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for row in pending:
        by_tenant.setdefault(row["tenant_id"], []).append(row)
    session.flush()  # the rows the journal refers to (commit flushes only after this hook)
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    # Tenants in a fixed order: two transactions spanning the same tenants cannot deadlock.
    for tenant_id in sorted(by_tenant):
        rows = by_tenant[tenant_id]
        if postgres:  # counter and rows in one round trip
            connection.execute(_PG_APPEND, {"tenant": tenant_id, "n": len(rows), **journal_columns(rows)})
            continue
        last = connection.execute(_TAKE_POSITIONS, {"tenant": tenant_id, "n": len(rows)}).scalar_one()
        first = last - len(rows) + 1
        for offset, row in enumerate(rows):
            row["position"] = first + offset
        # The rows as parameters of one statement: SQLAlchemy sends them in batches within
        # SQLite's bound-parameter limit ("insertmanyvalues").
        connection.execute(_INSERT_EVENTS, rows)


# Built once: building a statement costs more than running it (see services/transitions.py).
_TAKE_POSITIONS = (
    update(Tenant)
    .where(Tenant.id == bindparam("tenant"))
    .values(feed_position=Tenant.feed_position + bindparam("n"))
    .returning(Tenant.feed_position)
)
_INSERT_EVENTS = sqlite.insert(RunEvent).on_conflict_do_nothing()
_COLUMNS = [c.name for c in RunEvent.__table__.columns if c.name not in ("id", "tenant_id", "position")]


def _unnested_columns() -> tuple[str, str]:
    """The journal's columns as ``unnest``'s arguments (one typed array parameter per column,
    ``journal_columns``) and as the comma-separated names they come back under."""
    table = RunEvent.__table__
    dialect = postgresql.dialect()
    arrays = ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=dialect)}[])" for name in _COLUMNS
    )
    return arrays, ", ".join(_COLUMNS)


def postgres_append(after: str | None = None, *, only_if_any: bool = False) -> tuple[str, str]:
    """The journal's append on PostgreSQL as a statement's parts, ``(CTE, INSERT)``: the CTE
    ``taken`` moves the tenant's counter, the INSERT stores the rows. Parameters: ``:tenant``,
    ``:n`` and one array per column (``journal_columns``). ``after`` names an earlier CTE of a
    larger statement that must be done before the counter is taken (its lock stays last);
    with ``only_if_any``, nothing is appended (nor the counter moved) if it returned no row."""
    # The counter's UPDATE and the INSERT in one statement: the rows arrive as one array per
    # column (asyncpg encodes them in C, no per-row parameter processing) and take positions
    # last - n + 1 ... last in their order (WITH ORDINALITY).
    arrays, names = _unnested_columns()
    # A scalar subquery on ``after`` in the counter's WHERE runs it to completion before the
    # counter's row is locked.
    wait = ""
    if after:
        wait = (
            f" AND EXISTS (SELECT 1 FROM {after})"
            if only_if_any
            else f" AND (SELECT count(*) FROM {after}) >= 0"
        )
    taken = (
        "taken AS (UPDATE tenants SET feed_position = feed_position + CAST(:n AS BIGINT) "
        f"WHERE id = :tenant{wait} RETURNING feed_position)"
    )
    rows = (
        f"INSERT INTO run_events (tenant_id, position, {names}) "
        f"SELECT :tenant, taken.feed_position - CAST(:n AS BIGINT) + r.ord, {', '.join('r.' + n for n in _COLUMNS)} "
        f"FROM taken, unnest({arrays}) WITH ORDINALITY AS r({names}, ord) "
        "ON CONFLICT DO NOTHING"
    )
    return taken, rows


def postgres_append_lines(checked: str) -> str:
    """The journal's append of log lines on PostgreSQL as the last CTEs of a larger statement,
    ending in ``appended`` (one row per line stored). Parameters: ``:tenant`` and one array per
    column (``journal_columns``). A line that repeats one earlier in the batch is left out
    before positions are taken; one stored already is skipped by its unique index, leaving a
    gap in the positions (as a re-delivery racing its original always may). ``checked`` names
    an earlier CTE whose boolean ``ok`` runs first (it may abort the statement); the counter
    is taken last."""
    # Lines stored already are not looked up before the counter is taken: a plan for that
    # look-up made while the table was young went through every line of the run (the
    # run-and-position index), 10 ms a line at 30,000 until autovacuum's ANALYZE. The unique
    # index the insert checks anyway is the one right way to find them.
    arrays, names = _unnested_columns()
    return (
        f"lines AS (SELECT DISTINCT ON (r.flow_run_id, r.execution, r.seq) r.* "
        f"FROM unnest({arrays}) WITH ORDINALITY AS r({names}, ord) "
        f"WHERE (SELECT ok FROM {checked}) ORDER BY r.flow_run_id, r.execution, r.seq, r.ord), "
        "fresh AS (SELECT *, row_number() OVER (ORDER BY ord) AS n, count(*) OVER () AS total FROM lines), "
        "taken AS (UPDATE tenants SET feed_position = feed_position + (SELECT count(*) FROM fresh) "
        "WHERE id = :tenant AND EXISTS (SELECT 1 FROM fresh) RETURNING feed_position), "
        f"appended AS (INSERT INTO run_events (tenant_id, position, {names}) "
        f"SELECT :tenant, taken.feed_position - fresh.total + fresh.n, {', '.join('fresh.' + n for n in _COLUMNS)} "
        "FROM taken, fresh ON CONFLICT DO NOTHING RETURNING 1)"
    )


def journal_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Journal rows (``_row``'s) as the one array per column that ``postgres_append`` binds."""
    return {name: [row[name] for row in rows] for name in _COLUMNS}


def rows_of(tenant_id: str, records: Iterable[Record]) -> list[dict[str, Any]]:
    """The journal rows of ``records`` (for a writer that stores them itself)."""
    return [_row(tenant_id, record) for record in records]


_TAKEN, _APPENDED = postgres_append()
_PG_APPEND = text(f"WITH {_TAKEN} {_APPENDED}")


def postgres_recorded(keys: str, alias: str) -> str:
    """A FROM clause on PostgreSQL: the transition ids of the array ``:{keys}`` that the tenant
    (``:tenant``) has stored already, as ``{alias}.transition_id``."""
    # One look-up per key on the (tenant, transition) unique index. With ``= ANY(array)``, a
    # generic plan made while run_events was young took the (tenant, position) index, which
    # ties on cost, and went through the tenant's whole journal for every flow-run state
    # change: 615 ms at 400,000 rows until autovacuum's ANALYZE (benchmarks/young_plans.py).
    return (
        f"FROM unnest(CAST(:{keys} AS VARCHAR[])) AS want(key) CROSS JOIN LATERAL (SELECT transition_id "
        "FROM run_events WHERE run_events.tenant_id = :tenant AND run_events.transition_id = want.key "
        f"LIMIT 1) AS {alias}"
    )


_RECORDED = PerDialect(
    lambda postgres: (
        text(f"SELECT e.transition_id {postgres_recorded('ids', 'e')}")
        if postgres
        else select(RunEvent.transition_id).where(
            RunEvent.tenant_id == bindparam("tenant"), one_of(RunEvent.transition_id, "ids", postgres=False)
        )
    )
)


@event.listens_for(JournalSession, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(JournalSession, "after_transaction_create")
def _mark(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[id(transaction)] = len(session.info.get(_KEY, []))


@event.listens_for(JournalSession, "after_soft_rollback")
def _undo(session: Session, transaction: SessionTransaction) -> None:
    mark = session.info.get(_MARKS, {}).pop(id(transaction), None)
    if transaction.nested and mark is not None and _KEY in session.info:
        del session.info[_KEY][mark:]


async def recorded_transitions(
    session: AsyncSession, tenant_id: str, transition_ids: Iterable[str]
) -> set[str]:
    """Which of these transition ids the tenant has stored already."""
    ids = list(dict.fromkeys(transition_ids))
    connection = await session.connection()
    found: set[str] = set()
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        found.update(
            (
                await connection.execute(_RECORDED.on(connection), {"tenant": tenant_id, "ids": chunk})
            ).scalars()
        )
    return found
