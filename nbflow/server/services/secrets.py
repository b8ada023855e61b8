"""Secrets of a tenant: set, delete, list (names only) and resolve for a running run.

Values are stored encrypted (``secretbox``) and leave the server only through
``resolve_for_run``: to an agent key, or to a run token for its own run, while that run
is active. No other caller, admin included, ever reads a value back.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from nbflow.core.errors import NbflowError
from nbflow.core.secrets import check_name
from nbflow.core.states import ACTIVE_TYPES
from nbflow.server import secretbox
from nbflow.server.errors import Conflict, Forbidden, NotFound, RequestError
from nbflow.server.models import utcnow
from nbflow.server.services.runs import get_flow_run
from nbflow.server.teammodels import Secret

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from nbflow.server.auth import Principal

MAX_VALUE_BYTES = 64 * 1024
_ACTIVE = frozenset(s.value for s in ACTIVE_TYPES)


def _name(name: str) -> str:
    try:
        return check_name(name.strip())
    except NbflowError as exc:
        raise RequestError(str(exc)) from None


async def set_secret(session: AsyncSession, tenant_id: str, name: str, value: str) -> Secret:
    """Create or replace secret ``name`` (the value is encrypted before it is stored)."""
    name = _name(name)
    if not value:
        raise RequestError(f"secret {name!r}: the value is empty")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise RequestError(f"secret {name!r}: the value is over {MAX_VALUE_BYTES} bytes")
    ciphertext = secretbox.encrypt(value)
    row = await _get(session, tenant_id, name)
    if row is None:
        row = Secret(id=str(uuid.uuid4()), tenant_id=tenant_id, name=name, ciphertext=ciphertext)
        session.add(row)
    else:
        row.ciphertext = ciphertext
        row.updated = utcnow()
    await session.flush()
    return row


async def delete_secret(session: AsyncSession, tenant_id: str, name: str) -> None:
    """Delete secret ``name``; ``NotFound`` if there is none."""
    name = _name(name)
    done = await session.execute(delete(Secret).where(Secret.tenant_id == tenant_id, Secret.name == name))
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no secret {name!r} in this tenant; `nbflow secrets list` shows them")


async def list_secrets(session: AsyncSession, tenant_id: str) -> list[Secret]:
    """The tenant's secrets, by name (their values are never read here)."""
    rows = await session.execute(select(Secret).where(Secret.tenant_id == tenant_id).order_by(Secret.name))
    return list(rows.scalars())


async def resolve_for_run(
    session: AsyncSession, principal: Principal, flow_run_id: str, name: str
) -> str | None:
    """The value of ``name`` for a run that is running now; ``None`` if no such secret."""
    if principal.run_id is not None and principal.run_id != flow_run_id:
        raise Forbidden(f"a run token may only read secrets for its own run ({principal.run_id})")
    run = await get_flow_run(session, principal.tenant_id, flow_run_id)
    if run.state not in _ACTIVE:
        raise Conflict(f"flow run {flow_run_id} is {run.state}: secrets are given to running runs only")
    row = await _get(session, principal.tenant_id, _name(name))
    return None if row is None else secretbox.decrypt(row.ciphertext)


async def _get(session: AsyncSession, tenant_id: str, name: str) -> Secret | None:
    query = select(Secret).where(Secret.tenant_id == tenant_id, Secret.name == name)
    return (await session.execute(query)).scalar_one_or_none()
