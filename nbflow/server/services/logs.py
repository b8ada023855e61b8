"""Run logs: batched writes that skip re-delivered lines, and reads.

A line is identified by ``(flow run, execution, seq)``: a re-delivered batch is
skipped line by line, and a resubmitted run (a new execution) keeps its own
lines. Lines of an execution that no longer owns its run are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from nbflow.server.db import checked_after
from nbflow.server.errors import Conflict, NotFound, RequestError
from nbflow.server.models import RunEvent
from nbflow.server.pgdriver import Positional, is_stale, pooled_driver
from nbflow.server.services import journal
from nbflow.server.services.taskstore import owning_runs_share_locked
from nbflow.server.services.transitions import owning_executions

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from nbflow.core.record import LogRecord

MAX_LOGS_PER_CALL = 5000


def _check(lines: list[LogRecord]) -> None:
    if len(lines) > MAX_LOGS_PER_CALL:
        raise RequestError(f"at most {MAX_LOGS_PER_CALL} log lines per call, got {len(lines)}")


async def record_logs(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str, lines: list[LogRecord]
) -> int:
    """``write_logs`` committed on its own. On PostgreSQL, one statement on the driver's
    connection (``_WRITE``), with no transaction block. When it finds a run unknown, of
    another tenant or owned by another execution, the session's path (``write_logs``) says
    which, or stores the lines if the run was claimed back meanwhile."""
    _check(lines)
    if not lines:
        return 0
    engine = sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        async with pooled_driver(engine) as driver:
            try:
                return await _postgres_write(driver, tenant_id, lines)
            except Exception as exc:
                if not is_stale(exc):
                    raise
    async with sessions.begin() as session:
        return await write_logs(session, tenant_id, lines)


async def _postgres_write(driver: Any, tenant_id: str, lines: list[LogRecord]) -> int:
    owners = sorted({(line.flow_run_id, line.execution) for line in lines})
    values = {
        "tenant": tenant_id,
        "run_ids": [run_id for run_id, _ in owners],
        "run_executions": [execution for _, execution in owners],
        "n_runs": len(owners),
        **journal.journal_columns(journal.rows_of(tenant_id, lines)),
    }
    return await driver.fetchval(_WRITE.sql, *_WRITE.args(values))


def _write_statement() -> Positional:
    # The owning runs share-locked at the lines' executions (a claim or release waits to the
    # commit), all of them or the statement aborts (nbflow_unless_stale), then the journal's
    # append (lines stored already skipped by their unique index), whose counter is taken last.
    return Positional(
        f"WITH {owning_runs_share_locked()}, "
        "checked AS (SELECT nbflow_unless_stale((SELECT count(*) FROM runs) = :n_runs) AS ok), "
        f"{journal.postgres_append_lines('checked')} "
        "SELECT count(*) FROM appended"
    )


_WRITE = _write_statement()


async def write_logs(session: AsyncSession, tenant_id: str, lines: list[LogRecord]) -> int:
    """Store lines in the session's transaction; a line whose (flow run, execution, seq) is
    stored already is skipped. Returns how many lines were new."""
    _check(lines)
    if not lines:
        return 0
    run_ids = {line.flow_run_id for line in lines}
    executions = await owning_executions(session, tenant_id, run_ids)
    missing = run_ids - set(executions)
    if missing:
        raise NotFound(f"no flow run {sorted(missing)[0]!r} in this tenant")
    stale = [line for line in lines if line.execution != executions[line.flow_run_id]]
    if stale:
        raise Conflict(
            f"superseded execution: flow run {stale[0].flow_run_id!r} is run by execution "
            f"{executions[stale[0].flow_run_id]} now, not {stale[0].execution}; these lines are refused"
        )
    keys = {(line.flow_run_id, line.execution, line.seq) for line in lines}
    stored = set(
        (
            await session.execute(
                select(RunEvent.flow_run_id, RunEvent.execution, RunEvent.seq).where(
                    RunEvent.flow_run_id.in_(run_ids),
                    tuple_(RunEvent.flow_run_id, RunEvent.execution, RunEvent.seq).in_(list(keys)),
                )
            )
        ).all()
    )
    new: dict[tuple[str, int, int], LogRecord] = {}
    for line in lines:
        key = (line.flow_run_id, line.execution, line.seq)
        if key not in stored:
            new.setdefault(key, line)
    journal.append(session, tenant_id, new.values())
    return len(new)


async def read_logs(
    session: AsyncSession,
    tenant_id: str,
    flow_run_id: str,
    *,
    task_slug: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[RunEvent]:
    """A run's log lines in recorded order, after position ``after_id``."""
    query = select(RunEvent).where(
        RunEvent.flow_run_id == flow_run_id,
        checked_after(RunEvent.tenant_id) == tenant_id,
        RunEvent.kind == "log",
        RunEvent.position > after_id,
    )
    if task_slug is not None:
        query = query.where(RunEvent.task == task_slug)
    return list((await session.execute(query.order_by(RunEvent.position).limit(limit))).scalars())
