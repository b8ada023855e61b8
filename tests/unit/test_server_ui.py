"""The server serves the web UI: the page for every UI path, its files, and the API beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from nbflow.server import ui
from nbflow.server.app import create_app

if TYPE_CHECKING:
    from pathlib import Path

    import httpx


def get(path: str, method: str = "GET") -> httpx.Response:
    # TestClient runs the app on its own loop in a thread (the browser tests' Playwright
    # keeps an event loop in this one); without `with`, no lifespan: these routes need no database.
    return TestClient(create_app()).request(method, path)


@pytest.mark.parametrize(
    "path", ["/", "/flows", "/flows/daily%20sales", "/runs/3f2a?task=clean&tab=logs", "/nope"]
)
def test_every_page_path_gets_the_single_page(path: str) -> None:
    response = get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/ui.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_bundle_is_served_from_the_package_and_nothing_else() -> None:
    script = get("/ui/ui.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert len(script.content) > 10_000
    assert "http://" not in script.text.split("//# sourceMappingURL")[0].replace("http://www.w3.org", "")
    assert get("/ui/ui.css").status_code == 200
    assert get("/ui/missing.js").status_code == 404
    for escape in ("/ui/../server/app.py", "/ui/..%2fserver%2fapp.py", "/ui/%2e%2e/server/app.py"):
        assert "create_app" not in get(escape).text


def test_the_api_keeps_its_paths() -> None:
    refused = get("/graphql", method="POST")
    assert refused.status_code == 401 and "missing API key" in refused.text
    assert get("/events/other").status_code == 404
    assert get("/graphql/extra").json() == {"error": "no such path '/graphql/extra'"}
    assert get("/", method="POST").status_code == 405


def test_an_installation_without_the_built_ui_says_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ui, "UI_DIR", tmp_path / "missing")
    response = get("/flows")
    assert response.status_code == 503
    assert "web UI is not built" in response.text and "pip install -e ." in response.text
    assert get("/ui/ui.js").status_code == 404
