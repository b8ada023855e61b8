"""The hook loop: find what fired (``hooks.py``), then deliver it, with retries and backoff.

It runs beside the API in the server process and never inside a request's transaction, so
a slow or dead receiver never delays a state write. A delivery is claimed by a
compare-and-set on its ``next_attempt`` (two replicas never send one twice at the same
time), sent outside any transaction, and its outcome recorded: ``delivered``, or the error
and the next attempt after ``retry_base * 2**(attempts-1)`` seconds, until ``MAX_ATTEMPTS``
make it ``failed``. Webhooks are POSTed as JSON; email goes through the SMTP server the
server was started with (``--smtp-host``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select, update

from nbflow.server.db import OutageLog
from nbflow.server.models import utcnow
from nbflow.server.services import hooks as hook_service
from nbflow.server.teammodels import Hook, HookDelivery

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger("nbflow.server.hooks")
MAX_ATTEMPTS = 6
LEASE = timedelta(seconds=60)  # a claimed delivery whose sender died is tried again after this
SEND_TIMEOUT = 10.0
BATCH = 20


class DeliveryError(Exception):
    """A receiver refused or could not be reached."""


@dataclass(frozen=True)
class Target:
    """Where a delivery goes (read from its hook inside the claim's transaction)."""

    name: str
    kind: str
    target: str


async def send(hook: Target, body: dict[str, Any], settings: Any) -> None:
    """Deliver ``body`` to ``hook``'s target; ``DeliveryError`` says why not."""
    if hook.kind == "webhook":
        try:
            async with httpx.AsyncClient(timeout=SEND_TIMEOUT) as client:
                response = await client.post(hook.target, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            raise DeliveryError(f"the receiver answered {response.status_code}: {response.text[:200]}")
        return
    await asyncio.to_thread(_send_email, hook, body, settings)


def _send_email(hook: Target, body: dict[str, Any], settings: Any) -> None:
    host = getattr(settings, "smtp_host", None)
    if not host:
        raise DeliveryError("this server sends no email: start it with --smtp-host")
    message = EmailMessage()
    message["From"] = getattr(settings, "smtp_from", None) or "nbflow@localhost"
    message["To"] = hook.target
    subject = f"nbflow: {body.get('flow')} {'task ' + body['task'] + ' ' if body.get('task') else ''}{body['state']}"
    message["Subject"] = subject
    message.set_content(body["text"] + "\n\n" + json.dumps(body, indent=2, default=str))
    try:
        with smtplib.SMTP(host, int(getattr(settings, "smtp_port", 25)), timeout=SEND_TIMEOUT) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


async def _claim(session: AsyncSession, delivery: HookDelivery) -> bool:
    now = utcnow()
    claimed = await session.execute(
        update(HookDelivery)
        .where(
            HookDelivery.id == delivery.id,
            HookDelivery.status == "pending",
            HookDelivery.next_attempt <= now,
        )
        .values(next_attempt=now + LEASE, attempts=HookDelivery.attempts + 1)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


async def attempt(sessions: async_sessionmaker[AsyncSession], delivery_id: str, settings: Any) -> None:
    """One attempt at one delivery (if it is due and nobody else took it), and its outcome."""
    async with sessions.begin() as session:
        delivery = await session.get(HookDelivery, delivery_id)
        if delivery is None or delivery.status != "pending" or not await _claim(session, delivery):
            return
        hook = await session.get(Hook, delivery.hook_id)
        if hook is None:
            return
        target = Target(hook.name, hook.kind, hook.target)
        body, attempts = dict(delivery.payload), delivery.attempts + 1
    error = ""
    try:
        await send(target, body, settings)
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:  # a bug in sending must not stop the loop: recorded like a refusal
        logger.exception("hook %s: delivery %s failed", target.name, delivery_id)
        error = f"{type(exc).__name__}: {exc}"
    now = utcnow()
    if not error:
        values: dict[str, Any] = {"status": "delivered", "delivered": now, "last_error": ""}
    elif attempts >= MAX_ATTEMPTS:
        values = {"status": "failed", "last_error": f"{error} (gave up after {attempts} attempts)"}
    else:
        delay = min(settings.hook_retry_base * 2 ** (attempts - 1), 3600.0)
        values = {"last_error": error, "next_attempt": now + timedelta(seconds=delay)}
    async with sessions.begin() as session:
        await session.execute(update(HookDelivery).where(HookDelivery.id == delivery_id).values(**values))


async def deliver_due(sessions: async_sessionmaker[AsyncSession], settings: Any) -> int:
    """Attempt the deliveries that are due, a few at a time; how many were due."""
    async with sessions() as session:
        due = list(
            (
                await session.execute(
                    select(HookDelivery.id)
                    .where(HookDelivery.status == "pending", HookDelivery.next_attempt <= utcnow())
                    .order_by(HookDelivery.next_attempt)
                    .limit(BATCH)
                )
            ).scalars()
        )
    await asyncio.gather(*(attempt(sessions, delivery_id, settings) for delivery_id in due))
    return len(due)


async def hook_pass(sessions: async_sessionmaker[AsyncSession], settings: Any) -> None:
    """Record what fired since the last pass, then deliver what is due."""
    async with sessions.begin() as session:
        by_tenant = await hook_service.tenants_with_hooks(session)
    for tenant_id, hooks in by_tenant.items():
        while True:
            async with sessions.begin() as session:
                read = await hook_service.find_events(session, tenant_id, hooks)
            if read < hook_service.BATCH:
                break
        async with sessions.begin() as session:
            await hook_service.find_late_runs(session, hooks)
    await deliver_due(sessions, settings)


async def hook_loop(sessions: async_sessionmaker[AsyncSession], settings: Any) -> None:
    """Hook passes forever, every ``settings.hook_interval`` seconds."""
    outage = OutageLog(logger, "hook pass")
    while True:
        with outage:
            await hook_pass(sessions, settings)
        await asyncio.sleep(settings.hook_interval)
