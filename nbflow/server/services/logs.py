"""Run logs: batched writes that ignore re-delivered lines, and reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from nbflow.server.errors import NotFound, RequestError
from nbflow.server.models import FlowRun, Log

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

MAX_LOGS_PER_CALL = 5000
MAX_MESSAGE = 100_000
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


@dataclass
class LogLine:
    flow_run_id: str
    seq: int
    level: str
    message: str
    timestamp: float
    task_run_id: str | None = None
    task_slug: str | None = None


async def write_logs(session: AsyncSession, tenant_id: str, lines: list[LogLine]) -> int:
    """Store lines; a line whose (flow run, seq) is stored already is skipped. Returns lines new."""
    if len(lines) > MAX_LOGS_PER_CALL:
        raise RequestError(f"at most {MAX_LOGS_PER_CALL} log lines per call, got {len(lines)}")
    if not lines:
        return 0
    run_ids = {line.flow_run_id for line in lines}
    owned = set(
        (
            await session.execute(
                select(FlowRun.id).where(FlowRun.tenant_id == tenant_id, FlowRun.id.in_(run_ids))
            )
        ).scalars()
    )
    missing = run_ids - owned
    if missing:
        raise NotFound(f"no flow run {sorted(missing)[0]!r} in this tenant")
    rows = []
    for line in lines:
        level = line.level.upper()
        if level not in LEVELS:
            raise RequestError(f"unknown log level {line.level!r}; levels: {', '.join(sorted(LEVELS))}")
        rows.append(
            {
                "tenant_id": tenant_id,
                "flow_run_id": line.flow_run_id,
                "task_run_id": line.task_run_id,
                "task_slug": line.task_slug,
                "seq": line.seq,
                "level": level,
                "message": line.message[:MAX_MESSAGE],
                "timestamp": line.timestamp,
            }
        )
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Log).values(rows).on_conflict_do_nothing(index_elements=["flow_run_id", "seq"])
    result = await session.execute(statement)
    return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(rows)


async def read_logs(
    session: AsyncSession,
    tenant_id: str,
    flow_run_id: str,
    *,
    task_slug: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[Log]:
    query = select(Log).where(Log.tenant_id == tenant_id, Log.flow_run_id == flow_run_id, Log.id > after_id)
    if task_slug is not None:
        query = query.where(Log.task_slug == task_slug)
    return list((await session.execute(query.order_by(Log.id).limit(limit))).scalars())
