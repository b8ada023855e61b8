"""A real `nbflow server start` and `nbflow agent start` for the web UI's browser tests
and screenshots, a demo flow registered with `nbflow register`, and signing in."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Page

# A flow with a parameterized wait (to watch it run, or to cancel it) and a task that fails.
UI_DEMO = [
    "%load_ext nbflow\n%flow name ui_demo",
    "%%setup\nimport time",
    "%%params\nday = '2024-06-01'\npause = 0.5",
    "%%task extract\nrows = [1, 2, 3]\nprint(f'extracted {len(rows)} rows for {day}')",
    "%%task wait\ntime.sleep(pause)\nwaited = pause",
    "%%task check\nraise ValueError(f'bad day {day}')",
    "%%task report\ntotal = sum(rows) + waited\nprint('total', total)",
]


class UiStack:
    """Server + agent processes on loopback, with helpers to register flows and sign in."""

    def __init__(self, home: Path, **server_options: float) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.server = ServerProcess(
            home, f"sqlite+aiosqlite:///{home / 'nbflow.db'}", **server_options
        ).start()
        with self.server.client() as client:
            self.agent_key = client.create_api_key("agent", "ui test agent").key
        self.agent = AgentProcess(self.server, self.agent_key, name="laptop-agent").start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin_key(self) -> str:
        assert self.server.admin_key is not None
        return self.server.admin_key

    def register(self, name: str, cells: list[str], *args: str) -> None:
        notebook = write_notebook(self.home / f"{name}.ipynb", cells)
        self.server.cli("register", str(notebook), *args)

    def key(self, role: str, name: str = "") -> str:
        with self.server.client() as client:
            return client.create_api_key(role, name).key

    def client(self, key: str | None = None) -> Any:
        return self.server.client(key)

    def stop(self) -> None:
        self.agent.stop()
        self.server.stop()


def sign_in(page: Page, url: str, key: str, path: str = "/") -> None:
    """Open `path`, enter the key in the sign-in form, and wait for the signed-in shell."""
    page.goto(url + path)
    page.fill("#api-key", key)
    page.click("form button[type=submit]")
    page.wait_for_selector("header.ui-top", timeout=15_000)
