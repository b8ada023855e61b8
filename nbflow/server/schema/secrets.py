"""GraphQL of secrets: ``secrets`` (names only), ``setSecret``, ``deleteSecret``, and
``runSecret`` (a value, for agents and run tokens of a running run only)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from nbflow.server.auth import AGENT, RUN
from nbflow.server.schema.context import CanManageFlows, CanRead, _Roles, ctx
from nbflow.server.services import secrets as secret_service
from nbflow.server.teammodels import Secret


class CanResolveSecrets(_Roles):
    """Only agent keys and run tokens (for their own running run) read a secret's value."""

    roles = frozenset({AGENT, RUN})
    what = "read secret values (only agents running a run can)"


@strawberry.type
class SecretInfo:
    """A secret's name and times; its value is never shown."""

    name: str
    created: datetime
    updated: datetime


def _info(row: Secret) -> SecretInfo:
    return SecretInfo(name=row.name, created=row.created, updated=row.updated)


@strawberry.type
class SecretsQuery:
    """Secrets on the read side."""

    @strawberry.field(permission_classes=[CanRead], description="The tenant's secrets: names only.")
    async def secrets(self, info: strawberry.Info) -> list[SecretInfo]:
        """The tenant's secrets, by name."""
        return [_info(row) for row in await ctx(info).read(secret_service.list_secrets)]

    @strawberry.field(
        permission_classes=[CanResolveSecrets],
        description="A secret's value for a running flow run (agents and its run token only); null if unset.",
    )
    async def run_secret(self, info: strawberry.Info, flow_run_id: str, name: str) -> str | None:
        """The value of secret ``name`` for the running run ``flow_run_id``."""
        c = ctx(info)
        async with c.sessions() as session:
            return await secret_service.resolve_for_run(session, c.principal, flow_run_id, name)


@strawberry.type
class SecretsMutation:
    """Secrets on the write side."""

    @strawberry.mutation(permission_classes=[CanManageFlows], description="Set a secret (stored encrypted).")
    async def set_secret(self, info: strawberry.Info, name: str, value: str) -> SecretInfo:
        """Create or replace a secret; the answer never holds the value."""
        return _info(await ctx(info).write(secret_service.set_secret, name, value))

    @strawberry.mutation(permission_classes=[CanManageFlows], description="Delete a secret.")
    async def delete_secret(self, info: strawberry.Info, name: str) -> bool:
        """Delete a secret; an error if there is none."""
        await ctx(info).write(secret_service.delete_secret, name)
        return True
