"""API keys: random, shown once, stored as a SHA-256 hash; each has a tenant and a role.

A key looks like ``nbf_<prefix>_<secret>``. The prefix finds the row; the hash
of the whole key must match (constant-time). Keys are 190+ random bits, so a
fast hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select

from nbflow.core.errors import NbflowError
from nbflow.server.models import ApiKey, FlowRun, Tenant, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

ADMIN, USER, AGENT, READ_ONLY = "admin", "user", "agent", "read-only"
ROLES = (ADMIN, USER, AGENT, READ_ONLY)
RUN = "run"
"""The role of a run token: it may report the states and logs of its own run, nothing else."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's tenant and role (and, for a run token, its run)."""

    tenant_id: str
    role: str
    key_id: str
    run_id: str | None = None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(full key, prefix)."""
    prefix = secrets.token_hex(6)
    return f"nbf_{prefix}_{secrets.token_urlsafe(24)}", prefix


async def create_key(session: AsyncSession, tenant_id: str, role: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key of ``role`` in the tenant: (row, the key itself, shown once)."""
    if role not in ROLES:
        raise NbflowError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    key, prefix = new_key()
    row = ApiKey(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        name=name or f"{role} key",
        role=role,
        prefix=prefix,
        hash=_hash(key),
    )
    session.add(row)
    await session.flush()
    return row, key


# Valid keys and run tokens seen in the last few seconds: saves a database round trip on every
# request. A revocation or a new claim clears it at once in this process; other replicas
# notice within the TTL.
PRINCIPAL_TTL = 2.0
_recent: dict[str, tuple[float, Principal]] = {}


def new_run_token(flow_run_id: str) -> tuple[str, str]:
    """(token, hash) for the execution that just claimed ``flow_run_id``: what its flow process
    reports with instead of the agent's key, so task code never holds more than its own run."""
    token = f"nbr_{flow_run_id}_{secrets.token_urlsafe(24)}"
    return token, _hash(token)


# Built once: building a statement costs more than running it.
_RUN_TOKEN = select(FlowRun.tenant_id, FlowRun.run_token_hash).where(FlowRun.id == bindparam("run_id"))


async def _run_principal(session: AsyncSession, token: str) -> Principal | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or not parts[1]:
        return None
    digest = _hash(token)
    known = _remembered(digest)
    if known is not None:
        return known
    found = (await session.execute(_RUN_TOKEN, {"run_id": parts[1]})).first()
    if found is None or found.run_token_hash is None or not hmac.compare_digest(found.run_token_hash, digest):
        return None
    return _remember(
        digest, Principal(tenant_id=found.tenant_id, role=RUN, key_id=f"run:{parts[1]}", run_id=parts[1])
    )


def _remembered(digest: str) -> Principal | None:
    cached = _recent.get(digest)
    if cached is not None and time.monotonic() - cached[0] < PRINCIPAL_TTL:
        return cached[1]
    return None


def remembered(key: str) -> Principal | None:
    """The principal of a key or run token that passed ``authenticate`` within the last
    ``PRINCIPAL_TTL`` seconds, without a database session; ``None`` means: authenticate it."""
    return _remembered(_hash(key))


def _remember(digest: str, principal: Principal) -> Principal:
    if len(_recent) > 10_000:
        _recent.clear()
    _recent[digest] = (time.monotonic(), principal)
    return principal


def forget_run_token(token_hash: str | None) -> None:
    """A run was claimed again: its old token stops working at once in this process (other
    replicas notice within ``PRINCIPAL_TTL``, and the write path refuses a superseded
    execution's records anyway)."""
    if token_hash is not None:
        _recent.pop(token_hash, None)


async def authenticate(session: AsyncSession, key: str | None) -> Principal | None:
    """The principal of a key or run token, or ``None`` for a missing, malformed, unknown or
    revoked one (a run token stops working when the run is claimed again)."""
    if key and key.startswith("nbr_"):
        return await _run_principal(session, key)
    if not key or not key.startswith("nbf_") or key.count("_") < 2:
        return None
    digest = _hash(key)
    known = _remembered(digest)
    if known is not None:
        return known
    prefix = key.split("_", 2)[1]
    row = (await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.hash, digest):
        _recent.pop(digest, None)
        return None
    return _remember(digest, Principal(tenant_id=row.tenant_id, role=row.role, key_id=row.id))


async def revoke_key(session: AsyncSession, tenant_id: str, key_id_or_prefix: str) -> ApiKey:
    """Revoke a key by id or prefix (effective at once in this process)."""
    row = (
        await session.execute(
            select(ApiKey).where(
                ApiKey.tenant_id == tenant_id,
                (ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix),
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NbflowError(f"no API key {key_id_or_prefix!r} in this tenant; `nbflow keys list` shows them")
    row.revoked_at = utcnow()
    _recent.clear()
    return row


async def create_tenant(session: AsyncSession, name: str) -> tuple[Tenant, str]:
    """A new tenant and its first admin key (returned once)."""
    name = name.strip()
    if not name:
        raise NbflowError("a tenant needs a name")
    exists = (await session.execute(select(Tenant).where(Tenant.name == name))).scalar_one_or_none()
    if exists is not None:
        raise NbflowError(f"tenant {name!r} exists already")
    tenant = Tenant(id=str(uuid.uuid4()), name=name)
    session.add(tenant)
    await session.flush()
    _, key = await create_key(session, tenant.id, ADMIN, name="first admin key")
    return tenant, key


async def bootstrap(session: AsyncSession) -> str | None:
    """On an empty database: a ``default`` tenant and its admin key; else ``None``."""
    count = (await session.execute(select(func.count()).select_from(Tenant))).scalar_one()
    if count:
        return None
    _, key = await create_tenant(session, "default")
    return key
