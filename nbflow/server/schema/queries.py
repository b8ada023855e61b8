"""Read side of the API: every query is scoped to the caller's tenant."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select

from nbflow.server.errors import RequestError
from nbflow.server.models import ApiKey, Tenant
from nbflow.server.schema.context import CanRead, CanWriteRuns, IsAdmin, check_own_run, ctx
from nbflow.server.schema.dashboard import DashboardQuery
from nbflow.server.schema.team import TeamQuery
from nbflow.server.schema.types import ApiKeyInfo, FlowRunPage, FlowRunType, FlowType, Me, TaskRunType
from nbflow.server.services import flows as flow_service
from nbflow.server.services import runs as run_service

MAX_PAGE = 1000


def _page(limit: int, offset: int) -> tuple[int, int]:
    if limit < 1 or limit > MAX_PAGE:
        raise RequestError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise RequestError(f"offset must not be negative, got {offset}")
    return limit, offset


@strawberry.type
class Query(DashboardQuery, TeamQuery):  # the web UI's read-side queries live in dashboard.py; team.py
    """The read side: every query is scoped to the caller's tenant."""

    @strawberry.field(description="The caller's tenant and role.")
    async def me(self, info: strawberry.Info) -> Me:
        """The caller's tenant and role."""
        c = ctx(info)
        async with c.sessions() as session:
            tenant = await session.get(Tenant, c.tenant_id)
            return Me(tenant_id=c.tenant_id, tenant_name=tenant.name if tenant else "", role=c.principal.role)

    @strawberry.field(permission_classes=[CanRead])
    async def flows(self, info: strawberry.Info, limit: int = 100, offset: int = 0) -> list[FlowType]:
        """Registered flows by name."""
        c = ctx(info)
        limit, offset = _page(limit, offset)
        async with c.sessions() as session:
            return [
                FlowType.from_row(f)
                for f in await flow_service.list_flows(session, c.tenant_id, limit=limit, offset=offset)
            ]

    @strawberry.field(permission_classes=[CanRead])
    async def flow(self, info: strawberry.Info, id: str | None = None, name: str | None = None) -> FlowType:
        """One flow by id or name."""
        return FlowType.from_row(await ctx(info).read(flow_service.get_flow, flow_id=id, name=name))

    @strawberry.field(permission_classes=[CanWriteRuns])
    async def restart_sources(self, info: strawberry.Info, flow_run_id: str) -> list[TaskRunType]:
        """For a run made by ``restartFlowRun``: the task runs of the run it restarts (their
        states and stored results' references), which its flow process reuses. A run token
        may ask for its own run only; an ordinary run has none."""
        c = ctx(info)
        check_own_run(c, {flow_run_id})
        async with c.sessions() as session:
            run = await run_service.get_flow_run(session, c.tenant_id, flow_run_id)
            if run.restart_of is None:
                return []
            rows = await run_service.task_runs(session, c.tenant_id, run.restart_of)
        return [TaskRunType.from_row(r) for r in rows if run_service.map_index(r.task_slug) is None]

    @strawberry.field(permission_classes=[CanRead])
    async def flow_run(self, info: strawberry.Info, id: str) -> FlowRunType:
        """One flow run by id."""
        c = ctx(info)
        async with c.sessions() as session:
            (run,) = await FlowRunType.many(
                session, [await run_service.get_flow_run(session, c.tenant_id, id)]
            )
            return run

    @strawberry.field(
        permission_classes=[CanRead],
        description="Newest first; filter by flow, states and time. Page by `offset`, or at any depth "
        "by key: pass a page's `nextCursor` as `after`.",
    )
    async def flow_runs(
        self,
        info: strawberry.Info,
        flow_id: str | None = None,
        flow_name: str | None = None,
        states: list[str] | None = None,
        scheduled_after: datetime | None = None,
        scheduled_before: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
        after: str | None = None,
    ) -> FlowRunPage:
        """Flow runs, newest first, filtered; a page by offset or after a cursor (``nextCursor``)."""
        c = ctx(info)
        limit, offset = _page(limit, offset)
        cursor = run_service.RunCursor.decode(after) if after is not None else None
        filters = run_service.RunFilter(flow_id, flow_name, states, scheduled_after, scheduled_before)
        async with c.sessions() as session:
            rows, total = await run_service.list_flow_runs(
                session, c.tenant_id, filters, limit=limit, offset=offset, after=cursor
            )
            items = await FlowRunType.many(session, rows)
        full = len(rows) == limit
        next_offset = offset + len(rows) if cursor is None and offset + len(rows) < total else None
        last = run_service.RunCursor(rows[-1].scheduled_start_time, rows[-1].id) if full else None
        return FlowRunPage(
            items=items, total=total, next_offset=next_offset, next_cursor=last.encode() if last else None
        )

    @strawberry.field(permission_classes=[IsAdmin])
    async def api_keys(self, info: strawberry.Info) -> list[ApiKeyInfo]:
        """The tenant's keys (never their secrets)."""
        c = ctx(info)
        async with c.sessions() as session:
            rows = (
                await session.execute(
                    select(ApiKey).where(ApiKey.tenant_id == c.tenant_id).order_by(ApiKey.created)
                )
            ).scalars()
            return [
                ApiKeyInfo(
                    id=r.id,
                    name=r.name,
                    role=r.role,
                    prefix=r.prefix,
                    created=r.created,
                    revoked=r.revoked_at is not None,
                )
                for r in rows
            ]
