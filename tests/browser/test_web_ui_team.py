"""The web UI's Team page, in headless Chromium against a real server and agent: the hooks, each
delivery a failing run made, the tag limits and the secrets' names (never their values)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect
from ui_stack import UiStack, sign_in

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from receivers import Receiver  # noqa: E402
from server_helpers import FINISHED, wait_for  # noqa: E402

from nbflow import client_team as team  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SECRET = "s3cret-value-never-shown"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    stack = UiStack(tmp_path_factory.mktemp("ui-team") / "home", hook_interval=0.3)
    try:
        stack.register("alerting", ["%%task boom\nraise RuntimeError('the warehouse is down')"])
        yield stack
    finally:
        stack.stop()


def test_team_page_shows_hooks_deliveries_limits_and_secret_names(page: Page, stack: UiStack) -> None:
    receiver = Receiver()
    try:
        with stack.client() as admin:
            admin.execute(
                team.add_hook("ops", "webhook", receiver.url, states=["Failed"], flow_name="alerting")
            )
            admin.execute(team.set_concurrency_limit("warehouse", 2))
            admin.execute(team.set_secret("WAREHOUSE_PASSWORD", SECRET))
            run_id = admin.create_flow_run(flow_name="alerting").id
            wait_for(lambda: admin.flow_run(run_id).state in FINISHED, timeout=60, what="the run")
            wait_for(lambda: receiver.bodies, timeout=30, what="the webhook")
        sign_in(page, stack.url, stack.key("read-only"), "/")
        page.click("nav >> text=Team")
        expect(page.locator("table.ui-hooks tr[data-hook='ops']")).to_contain_text(
            "flow runs of flow alerting on Failed"
        )
        delivery = page.locator("table.ui-deliveries tr[data-delivery='delivered']")
        expect(delivery).to_contain_text("ops")
        expect(delivery).to_contain_text("Failed")
        expect(delivery).to_contain_text("delivered (1 attempt)")
        expect(delivery.locator(f"a[href='/runs/{run_id}']")).to_be_visible()
        expect(page.locator("table.ui-limits tr[data-tag='warehouse']")).to_contain_text("0 of 2 task runs")
        expect(page.locator("ul.ui-secrets")).to_contain_text("WAREHOUSE_PASSWORD")
        assert SECRET not in page.content()
        assert page.url == stack.url + "/team"
    finally:
        receiver.close()
