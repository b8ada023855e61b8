"""``GET /events``: the live feed as server-sent events.

Each event is a batch of run records (``StateRecord``/``LogRecord`` wire form plus
``position``) after the cursor (the SSE ``id``), for the caller's tenant or one
flow run. The key is checked again every few seconds while the stream is open,
so a revoked key stops receiving within ``RECHECK_KEY`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from starlette.responses import StreamingResponse

from nbflow.server import auth, db
from nbflow.server.gate import bearer, error, unavailable
from nbflow.server.services import feed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.responses import Response

RECHECK_KEY = 2.0
"""Seconds between checks that an open stream's key is still valid."""
KEEP_ALIVE = 15.0
OUTAGE_WAIT = 1.0
"""Seconds between looks at a database that is unavailable, while a stream stays open."""


async def live_feed(request: Request) -> Response:
    """Server-sent events: run records of the caller's tenant (or of ``?flow_run_id=``)."""
    state = request.app.state
    key = bearer(request)
    try:
        async with state.sessions() as session:
            principal = await auth.authenticate(session, key)
            if principal is None:
                return error(401, "missing, invalid or revoked API key", "UNAUTHENTICATED")
            if principal.role == auth.AGENT:
                return error(403, "an agent key may not read the live feed", "FORBIDDEN")
            start = request.query_params.get("cursor")
            cursor = (
                feed.decode_cursor(start) if start else await feed.latest_cursor(session, principal.tenant_id)
            )
    except Exception as exc:
        if not db.is_unavailable(exc):
            raise
        return unavailable()
    flow_run_id = request.query_params.get("flow_run_id")
    if flow_run_id and request.query_params.get("from") == "start":
        cursor = 0

    async def stream() -> AsyncIterator[str]:
        nonlocal cursor
        yield ": nbflow live feed\n\n"
        idle, checked = 0.0, time.monotonic()
        away = False
        while not await request.is_disconnected():
            try:
                async with state.sessions() as session:
                    if time.monotonic() - checked > RECHECK_KEY:
                        checked = time.monotonic()
                        if await auth.authenticate(session, key) is None:
                            yield 'event: error\ndata: {"message": "the API key was revoked"}\n\n'
                            return
                    batch, cursor = await feed.events_since(
                        session, principal.tenant_id, cursor, flow_run_id=flow_run_id
                    )
            except Exception as exc:
                if not db.is_unavailable(exc):
                    raise
                # The stream stays open through an outage and goes on from its cursor after it.
                if not away:
                    away = True
                    yield ": the database is unavailable; waiting\n\n"
                await asyncio.sleep(OUTAGE_WAIT)
                continue
            away = False
            if batch:
                idle = 0.0
                yield f"id: {cursor}\nevent: batch\ndata: {json.dumps(batch)}\n\n"
                continue
            await state.notifier.wait(0.25)
            idle += 0.25
            if idle >= KEEP_ALIVE:
                idle = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
