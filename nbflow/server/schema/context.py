"""What every resolver gets: the caller, database sessions and the in-process notifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import strawberry

from nbflow.server.auth import ADMIN, AGENT, READ_ONLY, USER, Principal

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from nbflow.server.services.feed import Notifier


@dataclass
class Context:
    principal: Principal
    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    settings: Any

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id


def ctx(info: strawberry.Info) -> Context:
    return info.context["nbflow"]


class _Roles(strawberry.BasePermission):
    roles: frozenset[str] = frozenset()
    what = "do this"
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012 - strawberry reads it from the class

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:  # noqa: ARG002
        role = ctx(info).principal.role
        if role in self.roles:
            return True
        self.message = (
            f"a {role} key may not {self.what}; ask for a key with role {' or '.join(sorted(self.roles))}"
        )
        return False


class CanRead(_Roles):
    roles = frozenset({ADMIN, USER, READ_ONLY})
    what = "read flows and runs"


class CanManageFlows(_Roles):
    roles = frozenset({ADMIN, USER})
    what = "register flows, create or cancel runs"


class CanReport(_Roles):
    roles = frozenset({ADMIN, AGENT})
    what = "pull work, set run states or write logs"


class IsAdmin(_Roles):
    roles = frozenset({ADMIN})
    what = "manage API keys"
