"""What every resolver gets: the caller, database sessions and the in-process notifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import strawberry

from nbflow.server.auth import ADMIN, AGENT, READ_ONLY, RUN, USER, Principal
from nbflow.server.errors import Forbidden

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from nbflow.server.services.feed import Notifier

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Context:
    """The caller (tenant and role), database sessions, the notifier and settings."""

    principal: Principal
    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    settings: Any

    @property
    def tenant_id(self) -> str:
        """The caller's tenant: every query filters on it."""
        return self.principal.tenant_id

    async def read(
        self,
        query: Callable[Concatenate[AsyncSession, str, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """One service query for the caller's tenant, in a read session of its own."""
        async with self.sessions() as session:
            return await query(session, self.tenant_id, *args, **kwargs)

    async def write(
        self,
        command: Callable[Concatenate[AsyncSession, str, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """One service command for the caller's tenant, in a transaction of its own (committed
        when it returns, rolled back if it raises)."""
        async with self.sessions.begin() as session:
            return await command(session, self.tenant_id, *args, **kwargs)


def ctx(info: strawberry.Info) -> Context:
    """The nbflow context of a resolver's ``info``."""
    return info.context["nbflow"]


class _Roles(strawberry.BasePermission):
    roles: frozenset[str] = frozenset()
    what = "do this"
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012 - strawberry reads it from the class

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:  # noqa: ARG002
        role = ctx(info).principal.role
        if role in self.roles:
            return True
        # "an admin", "an agent", but "a user", "a read-only" (sound, not spelling)
        named = f"an {role}" if role in (ADMIN, AGENT) else f"a {role}"
        grantable = sorted(self.roles - {RUN})  # run tokens are made by claims, never asked for
        self.message = f"{named} key may not {self.what}; ask for a key with role {' or '.join(grantable)}"
        return False


class CanRead(_Roles):
    """Admin, user and read-only keys may read flows and runs."""

    roles = frozenset({ADMIN, USER, READ_ONLY})
    what = "read flows and runs"


class CanManageFlows(_Roles):
    """Admin and user keys may register flows and create or cancel runs."""

    roles = frozenset({ADMIN, USER})
    what = "register flows, create or cancel runs"


class CanReport(_Roles):
    """Admin and agent keys may pull work, heartbeat and say hello as an agent."""

    roles = frozenset({ADMIN, AGENT})
    what = "pull work, set run states or write logs"


class CanWriteRuns(_Roles):
    """Admin and agent keys, and run tokens (for their own run only), may set states and write logs."""

    roles = frozenset({ADMIN, AGENT, RUN})
    what = "set run states or write logs"


def check_own_run(c: Context, flow_run_ids: set[str]) -> None:
    """A run token reports its own run only: refuse a request that names any other."""
    run_id = c.principal.run_id
    others = sorted(flow_run_ids - {run_id}) if run_id is not None else []
    if others:
        raise Forbidden(f"a run token may only report its own run ({run_id}), not {others[0]!r}")


class IsAdmin(_Roles):
    """Only admin keys may manage API keys."""

    roles = frozenset({ADMIN})
    what = "manage API keys"
