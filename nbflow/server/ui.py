"""The web UI's files: ``/ui/*`` serves the built bundle, every other page path gets ``index.html``.

The UI routes in the browser (history API), so a shared link such as
``/runs/<id>`` must load the same page; the API paths (``/graphql``,
``/events``, ``/health``) are matched before these routes and keep working.
The bundle is built by the frontend build (``labextension/scripts/build.mjs``)
into ``nbflow/static/ui``; a package built without npm answers with a page
that says how to build it instead of a 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import Message, Receive, Scope, Send

UI_DIR = Path(__file__).resolve().parent.parent / "static" / "ui"
API_PREFIXES = ("/graphql", "/events", "/health", "/ui/")

# The UI talks to its own origin only; nothing is loaded from anywhere else.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>nbflow</title>
<h1>nbflow: the web UI is not built</h1>
<p>This installation has no <code>nbflow/static/ui</code>. Build it with
<code>pip install -e .</code> (needs node 20 and npm) from the repository.
The API at <code>/graphql</code> works without it.</p>"""


class _Assets(StaticFiles):
    """StaticFiles that revalidates (fixed file names) and adds the security headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not UI_DIR.is_dir():
            await HTMLResponse(NOT_BUILT, status_code=404)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"cache-control", b"no-cache"))
                headers.extend((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


async def page(request: Request) -> Response:
    """Any UI path: the single page; unknown API-like paths stay a JSON 404."""
    path = request.url.path
    if path.startswith(API_PREFIXES):
        return JSONResponse({"error": f"no such path {path!r}"}, status_code=404)
    index = UI_DIR / "index.html"
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503, headers=headers)
    return FileResponse(index, media_type="text/html; charset=utf-8", headers=headers)


def routes() -> list[Route | Mount]:
    """Mount after the API routes: ``/ui/*`` files, then the page for every other GET path."""
    return [
        Mount("/ui", app=_Assets(directory=UI_DIR, check_dir=False), name="ui"),
        Route("/{path:path}", page, methods=["GET", "HEAD"]),
    ]
