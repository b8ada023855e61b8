"""Browser tests: Playwright drives Debian's Chromium (never `playwright install`)
against a real `jupyter lab` on a free loopback port. A failing test saves a screenshot
under test-artifacts/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from typing import TYPE_CHECKING

from server_helpers import free_port  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

CHROMIUM = os.environ.get("NBFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REPO = Path(__file__).resolve().parents[2]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        page = item.funcargs.get("page")
        if page is not None:
            ARTIFACTS.mkdir(exist_ok=True)
            path = ARTIFACTS / f"{item.name}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                report.sections.append(("screenshot", str(path)))
            except Exception as exc:  # the page may be gone; the failure itself matters more
                report.sections.append(("screenshot", f"not saved: {exc}"))


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    yield page
    context.close()


class JupyterLab:
    def __init__(self, root: Path, env: dict[str, str], app: str = "lab") -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "jupyter.log"
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter", app, "--no-browser", "--ip", "127.0.0.1", "--port", str(self.port),
                "--ServerApp.token=", "--ServerApp.password=", "--allow-root", *(["--LabApp.news_url=None"] if app == "lab" else []),
                f"--ServerApp.root_dir={root}",
            ],
            env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/api/status", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"jupyter lab did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def jupyter(tmp_path: Path, nbflow_home: Path) -> Iterator[JupyterLab]:
    root = tmp_path / "lab"
    root.mkdir()
    for name in ("05_shell_task.ipynb", "02_failure_handling.ipynb"):
        shutil.copy(REPO / "notebooks" / name, root / name)
    env = {
        **os.environ,
        "NBFLOW_HOME": str(nbflow_home),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
    }
    lab = JupyterLab(root, env)
    yield lab
    lab.stop()


@pytest.fixture
def notebook7(tmp_path: Path, nbflow_home: Path) -> Iterator[JupyterLab]:
    """A real Jupyter Notebook 7 server (not JupyterLab) serving an example notebook."""
    root = tmp_path / "nb7"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / "05_shell_task.ipynb", root / "05_shell_task.ipynb")
    env = {
        **os.environ,
        "NBFLOW_HOME": str(nbflow_home),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
    }
    server = JupyterLab(root, env, app="notebook")
    yield server
    server.stop()
