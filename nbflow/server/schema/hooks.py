"""GraphQL of server hooks: ``hooks``, ``hookDeliveries``, ``addHook``, ``removeHook``,
``testHook``. Deliveries are made by the hook loop (``services/hookloop.py``), never here,
except the one test message ``testHook`` sends at once."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from nbflow.server.errors import NotFound
from nbflow.server.schema.context import CanManageFlows, CanRead, ctx
from nbflow.server.services import hooks as hook_service
from nbflow.server.services.hookloop import attempt
from nbflow.server.teammodels import Hook, HookDelivery


@strawberry.type
class HookType:
    """A hook: which states of which runs notify which target."""

    id: str
    name: str
    kind: str
    target: str
    scope: str
    states: list[str]
    flow_name: str | None = strawberry.field(description="null: every flow of the tenant")
    late_minutes: int | None
    created: datetime

    @classmethod
    def from_row(cls, row: Hook, flow_name: str | None) -> HookType:
        """The GraphQL object of a stored hook."""
        return cls(
            id=row.id, name=row.name, kind=row.kind, target=row.target, scope=row.scope,
            states=list(row.states), flow_name=flow_name, late_minutes=row.late_minutes, created=row.created,
        )  # fmt: skip


@strawberry.type
class HookDeliveryType:
    """One event a hook fired for, and how its delivery went."""

    id: str
    hook_id: str
    hook_name: str
    event_key: str
    flow_run_id: str
    task_slug: str | None
    state: str
    status: str = strawberry.field(description="pending, delivered or failed (gave up)")
    attempts: int
    last_error: str
    payload: JSON
    created: datetime
    delivered: datetime | None

    @classmethod
    def from_row(cls, row: HookDelivery, hook_name: str) -> HookDeliveryType:
        """The GraphQL object of a stored delivery."""
        return cls(
            id=row.id, hook_id=row.hook_id, hook_name=hook_name, event_key=row.event_key,
            flow_run_id=row.flow_run_id, task_slug=row.task_slug, state=row.state, status=row.status,
            attempts=row.attempts, last_error=row.last_error, payload=row.payload, created=row.created,
            delivered=row.delivered,
        )  # fmt: skip


@strawberry.input
class AddHookInput:
    """A new hook."""

    name: str
    kind: str = strawberry.field(description="webhook or email")
    target: str = strawberry.field(description="the webhook's URL, or email addresses (comma-separated)")
    states: list[str] = strawberry.field(default_factory=lambda: ["Failed"])
    scope: str = strawberry.field(default="flow_run", description="flow_run or task_run")
    flow_name: str | None = strawberry.field(default=None, description="null: every flow of the tenant")
    late_minutes: int | None = strawberry.field(default=None, description="for the Late state")


@strawberry.type
class HooksQuery:
    """Hooks on the read side."""

    @strawberry.field(permission_classes=[CanRead], description="The tenant's hooks.")
    async def hooks(self, info: strawberry.Info) -> list[HookType]:
        """The tenant's hooks, oldest first."""
        return [HookType.from_row(h, f) for h, f in await ctx(info).read(hook_service.list_hooks)]

    @strawberry.field(permission_classes=[CanRead], description="Recent deliveries, newest first.")
    async def hook_deliveries(
        self, info: strawberry.Info, hook: str | None = None, limit: int = 50
    ) -> list[HookDeliveryType]:
        """Recent deliveries of every hook, or of one (by id or name)."""
        rows = await ctx(info).read(hook_service.list_deliveries, hook_id=hook, limit=limit)
        return [HookDeliveryType.from_row(row, name) for row, name in rows]


@strawberry.type
class HooksMutation:
    """Hooks on the write side."""

    @strawberry.mutation(permission_classes=[CanManageFlows], description="Add a hook.")
    async def add_hook(self, info: strawberry.Info, input: AddHookInput) -> HookType:
        """A new hook; it fires for states committed from now on."""
        c = ctx(info)
        async with c.sessions.begin() as session:
            hook, flow = await hook_service.add_hook(
                session, c.tenant_id, name=input.name, kind=input.kind, target=input.target,
                states=input.states, scope=input.scope, flow_name=input.flow_name,
                late_minutes=input.late_minutes, smtp_host=c.settings.smtp_host,
            )  # fmt: skip
            return HookType.from_row(hook, flow.name if flow else None)

    @strawberry.mutation(permission_classes=[CanManageFlows], description="Remove a hook (by id or name).")
    async def remove_hook(self, info: strawberry.Info, hook: str) -> bool:
        """Remove a hook and its deliveries."""
        await ctx(info).write(hook_service.remove_hook, hook)
        return True

    @strawberry.mutation(
        permission_classes=[CanManageFlows], description="Send a test message through a hook now."
    )
    async def test_hook(self, info: strawberry.Info, hook: str) -> HookDeliveryType:
        """One delivery of a test message, attempted at once (retried later like any other)."""
        c = ctx(info)
        async with c.sessions.begin() as session:
            row = await hook_service.get_hook(session, c.tenant_id, hook)
            delivery_id = await hook_service.test_delivery(session, row)
            name = row.name
        await attempt(c.sessions, delivery_id, c.settings)
        async with c.sessions() as session:
            delivery = await session.get(HookDelivery, delivery_id)
        if delivery is None:  # the hook was removed meanwhile (its deliveries go with it)
            raise NotFound(f"hook {hook!r} was removed while its test message was sent")
        return HookDeliveryType.from_row(delivery, name)
