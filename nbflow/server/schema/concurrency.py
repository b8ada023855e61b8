"""GraphQL of tag concurrency limits: ``concurrencyLimits``, ``setConcurrencyLimit``,
``deleteConcurrencyLimit``, and the flow process's ``acquireConcurrencySlots`` /
``releaseConcurrencySlots`` (agents and run tokens, for their own run)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from nbflow.server.schema.context import CanManageFlows, CanRead, CanWriteRuns, check_own_run, ctx
from nbflow.server.services import concurrency


@strawberry.type
class SlotHolder:
    """A task run holding a slot now."""

    flow_run_id: str
    task_slug: str
    task_run_id: str
    acquired: datetime


@strawberry.type
class ConcurrencyLimitType:
    """A tag's limit and the task runs holding its slots now (or a label's limit of active flow runs)."""

    kind: str = strawberry.field(description="tag (task runs) or label (flow runs)")
    tag: str
    limit: int
    in_use: int
    holders: list[SlotHolder]


@strawberry.type
class SlotAnswer:
    """Whether the slots were granted, and if not, why (shown while the task waits)."""

    granted: bool
    reason: str


@strawberry.type
class ConcurrencyQuery:
    """Limits on the read side."""

    @strawberry.field(permission_classes=[CanRead], description="The tenant's tag concurrency limits.")
    async def concurrency_limits(self, info: strawberry.Info) -> list[ConcurrencyLimitType]:
        """Every limit, with the slots held now."""
        c = ctx(info)
        rows = await c.read(concurrency.list_limits, heartbeat_timeout=c.settings.heartbeat_timeout)
        return [
            ConcurrencyLimitType(
                kind=row.kind,
                tag=row.tag,
                limit=row.limit,
                in_use=in_use,
                holders=[
                    SlotHolder(
                        flow_run_id=s.flow_run_id,
                        task_slug=s.task_slug,
                        task_run_id=s.task_run_id,
                        acquired=s.acquired,
                    )
                    for s in slots
                ],
            )
            for row, slots, in_use in rows
        ]


@strawberry.type
class ConcurrencyMutation:
    """Limits and slots on the write side."""

    @strawberry.mutation(
        permission_classes=[CanManageFlows],
        description="Set the limit of a tag (running task runs) or, with kind label, a label (active flow runs).",
    )
    async def set_concurrency_limit(
        self, info: strawberry.Info, tag: str, limit: int, kind: str = "tag"
    ) -> ConcurrencyLimitType:
        """Create or change a limit."""
        row = await ctx(info).write(concurrency.set_limit, tag, limit, kind=kind)
        return ConcurrencyLimitType(kind=row.kind, tag=row.tag, limit=row.limit, in_use=0, holders=[])

    @strawberry.mutation(
        permission_classes=[CanManageFlows], description="Remove the limit of a tag or label."
    )
    async def delete_concurrency_limit(self, info: strawberry.Info, tag: str, kind: str = "tag") -> bool:
        """Remove a limit."""
        await ctx(info).write(concurrency.delete_limit, tag, kind=kind)
        return True

    @strawberry.mutation(
        permission_classes=[CanWriteRuns],
        description="Take a slot of every limited tag for a task run about to run, or none.",
    )
    async def acquire_concurrency_slots(
        self, info: strawberry.Info, flow_run_id: str, task_run_id: str, task_slug: str, tags: list[str]
    ) -> SlotAnswer:
        """Granted, or why not (a full tag: how many of how many slots are in use)."""
        c = ctx(info)
        check_own_run(c, {flow_run_id})
        async with c.sessions.begin() as session:
            granted, reason = await concurrency.acquire(
                session, c.tenant_id, flow_run_id=flow_run_id, task_run_id=task_run_id, task_slug=task_slug,
                tags=tags, heartbeat_timeout=c.settings.heartbeat_timeout,
            )  # fmt: skip
        return SlotAnswer(granted=granted, reason=reason)

    @strawberry.mutation(permission_classes=[CanWriteRuns], description="Give back a task run's slots.")
    async def release_concurrency_slots(
        self, info: strawberry.Info, flow_run_id: str, task_run_id: str
    ) -> int:
        """How many slots were given back."""
        c = ctx(info)
        check_own_run(c, {flow_run_id})
        async with c.sessions.begin() as session:
            return await concurrency.release(
                session, c.tenant_id, flow_run_id=flow_run_id, task_run_id=task_run_id
            )
