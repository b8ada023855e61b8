"""The web UI as a user sees it, in headless Chromium, against a real `nbflow server start`
and a real `nbflow agent start` (one pair for the module; each test signs in afresh)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect
from ui_stack import UI_DEMO, UiStack, sign_in

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LIVE = 30_000  # ms: a run through the agent takes a few seconds on a loaded 2-core machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    stack = UiStack(tmp_path_factory.mktemp("ui") / "home")
    try:
        stack.register("ui_demo", UI_DEMO, "--schedule-every", "1h")
        yield stack
    finally:
        stack.stop()


def node(page: Page, task: str, state: str | None = None) -> str:
    selector = f".ui-run-dag g.nbflow-node[data-task='{task}']"
    return selector + (f"[data-state='{state}']" if state else "")


def start_run_from_form(page: Page, stack: UiStack, **values: str) -> str:
    sign_in(page, stack.url, stack.admin_key, "/flows/ui_demo")
    for name, value in values.items():
        page.fill(f"#param-{name}", value)
    page.click("button[data-action='start-run']")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"), timeout=10_000)
    return page.url.rsplit("/", 1)[1]


def graphql_from_page(page: Page, key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """What the server answers this browser for a request the UI does not offer."""
    return page.evaluate(
        """async ([key, query, variables]) => {
            const r = await fetch("/graphql", {method: "POST", body: JSON.stringify({query, variables}),
                headers: {"Authorization": `Bearer ${key}`, "Content-Type": "application/json"}});
            return await r.json();
        }""",
        [key, query, variables],
    )


def test_a_wrong_key_is_refused_with_a_clear_message_and_the_right_key_signs_in(
    page: Page, stack: UiStack
) -> None:
    assert f"web UI: {stack.url}/ (sign in with an API key)" in stack.server.log_path.read_text()
    page.goto(stack.url + "/flows")
    page.fill("#api-key", "nbf_0123456789ab_not-a-real-secret")
    page.click("form button[type=submit]")
    alert = page.locator("#signin-error")
    alert.wait_for()
    assert "The server refused this key (invalid or revoked API key)" in alert.inner_text()
    assert page.locator("header.ui-top").count() == 0

    page.fill("#api-key", stack.admin_key)
    page.click("form button[type=submit]")
    page.wait_for_selector("table.ui-flows tr[data-flow='ui_demo']")
    assert page.url == stack.url + "/flows"  # the shared link still leads where it pointed
    assert stack.admin_key not in page.url
    page.reload()  # the key is kept for this tab's session
    page.wait_for_selector("table.ui-flows tr[data-flow='ui_demo']")
    assert page.evaluate("sessionStorage.getItem('nbflow.apiKey')") == stack.admin_key
    page.click("text=Sign out")
    page.wait_for_selector("#api-key")
    assert page.evaluate("sessionStorage.getItem('nbflow.apiKey')") is None


def test_dashboard_shows_agents_upcoming_runs_and_warns_of_runs_no_agent_can_take(
    page: Page, stack: UiStack
) -> None:
    stack.register("gpu_train", ["%load_ext nbflow\n%flow name gpu_train", "%%task\nx = 1"],
                   "--schedule-every", "1h", "--labels", "gpu")  # fmt: skip
    sign_in(page, stack.url, stack.admin_key)
    page.wait_for_selector("h1:text-is('Dashboard')")
    agent = page.locator("table[aria-label='Agents'] tr[data-agent='laptop-agent']")
    agent.wait_for()
    assert agent.locator("td").first.text_content() == "laptop-agent online"
    warning = page.locator("[data-testid='stranded']")
    warning.wait_for(timeout=LIVE)
    assert re.search(r"10 scheduled runs of gpu_train need the label\s*gpu", warning.inner_text())
    upcoming = page.locator("table[aria-label='Upcoming runs'] tbody tr")
    assert upcoming.count() == 10
    with stack.client() as client:
        client.set_schedule_active(next(f.id for f in client.flows() if f.name == "gpu_train"), False)
    page.reload()
    page.wait_for_selector("h1:text-is('Dashboard')")
    page.wait_for_selector("table[aria-label='Agents']")
    assert page.locator("[data-testid='stranded']").count() == 0


def test_a_flow_shows_its_structure_and_its_schedule_toggles_the_next_runs(
    page: Page, stack: UiStack
) -> None:
    sign_in(page, stack.url, stack.admin_key, "/flows")
    page.click("table.ui-flows a:text-is('ui_demo')")
    page.wait_for_url(stack.url + "/flows/ui_demo")
    for task in ("extract", "wait", "check", "report"):
        page.wait_for_selector(f".ui-structure g.nbflow-node[data-task='{task}']")
    edges = page.locator(".ui-structure path.nbflow-edge")
    assert edges.count() >= 2
    params = page.locator("table[aria-label='Parameters']").inner_text()
    assert "day" in params and "2024-06-01" in params and "pause" in params

    next_runs = page.locator("ol[aria-label='Next scheduled runs'] li")
    next_runs.first.wait_for(timeout=LIVE)
    assert next_runs.count() == 10
    switch = page.locator("button[role='switch'][aria-label^='Schedule of ui_demo']")
    assert switch.get_attribute("aria-checked") == "true"
    switch.click()
    page.wait_for_selector("button[role='switch'][aria-checked='false']")
    page.wait_for_selector("text=No scheduled runs ahead.")
    assert next_runs.count() == 0
    switch.click()
    page.wait_for_selector("button[role='switch'][aria-checked='true']")
    expect(next_runs).to_have_count(10, timeout=LIVE)


def test_start_a_run_with_parameters_watch_it_live_and_read_the_failed_tasks_error(
    page: Page, stack: UiStack
) -> None:
    run_id = start_run_from_form(page, stack, day="2024-06-02", pause="3")
    assert page.locator("[data-testid='run-parameters']").inner_text() == "day=2024-06-02, pause=3"
    # States arrive over the live feed: the page is never reloaded.
    page.wait_for_selector(node(page, "wait", "Running"), timeout=LIVE)
    page.wait_for_selector(node(page, "extract", "Success"), timeout=LIVE)
    page.wait_for_selector(node(page, "wait", "Success"), timeout=LIVE)
    page.wait_for_selector(node(page, "check", "Failed"), timeout=LIVE)
    page.wait_for_selector(".ui-run-page[data-run-state='Failed']", timeout=LIVE)
    assert page.locator(".nbflow-summary").get_attribute("data-failed") == "1"
    assert page.url.endswith(f"/runs/{run_id}")

    page.click(node(page, "check"))
    detail = page.locator("aside.ui-task-detail[data-task='check']")
    detail.wait_for()
    assert "ValueError: bad day 2024-06-02" in detail.locator("[data-testid='task-message']").inner_text()
    traceback = detail.locator("[data-testid='task-error-log']").first
    traceback.wait_for()
    assert "Traceback" in traceback.inner_text() and "raise ValueError" in traceback.inner_text()
    assert "task=check" in page.url  # the selection is part of the shareable link
    logs = page.locator(".ui-log-list .ui-log-row")
    assert logs.count() >= 1 and all("check" in t for t in logs.all_inner_texts())
    page.fill("input[type='search']", "bad day")
    page.wait_for_selector(".ui-log-row mark:text-is('bad day')")

    page.click("button[role='tab']:has-text('Timeline')")
    page.wait_for_selector(".ui-tl-row[data-task='wait'] rect.ui-tl-bar[data-state='Success']")
    page.click("button[role='tab']:has-text('Tasks')")
    row = page.locator(".ui-tt-row[data-task='check']")
    assert row.get_attribute("data-state") == "Failed"


def test_cancel_a_running_run(page: Page, stack: UiStack) -> None:
    start_run_from_form(page, stack, pause="60")
    page.wait_for_selector(node(page, "wait", "Running"), timeout=LIVE)
    page.click("button[data-action='cancel-run']")
    page.wait_for_selector(".ui-run-page[data-run-state='Cancelled']", timeout=LIVE)
    page.wait_for_selector(node(page, "wait", "Cancelled"), timeout=LIVE)
    assert page.locator("button[data-action='cancel-run']").count() == 0


def test_a_read_only_key_sees_no_run_or_cancel_controls_and_the_server_refuses_them(
    page: Page, stack: UiStack
) -> None:
    with stack.client() as client:
        run = client.create_flow_run(flow_name="ui_demo", parameters={"pause": 60})
    read_only = stack.key("read-only", "dashboard screen")
    try:
        sign_in(page, stack.url, read_only, "/flows/ui_demo")
        page.wait_for_selector(".ui-structure g.nbflow-node[data-task='wait']")
        assert page.locator("button[data-action='start-run']").count() == 0
        assert page.locator("form.ui-run-form").count() == 0
        assert page.locator("button[role='switch']").count() == 0
        page.goto(f"{stack.url}/runs/{run.id}")
        page.wait_for_selector(node(page, "wait", "Running"), timeout=LIVE)
        assert page.locator("button[data-action='cancel-run']").count() == 0
        assert page.locator("button[data-action='rerun']").count() == 0
        assert page.locator("a:text-is('Settings')").count() == 0

        refused = graphql_from_page(
            page, read_only,
            "mutation($input: CreateFlowRunInput!) { createFlowRun(input: $input) { created } }",
            {"input": {"flowName": "ui_demo"}},
        )  # fmt: skip
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert (
            "a read-only key may not register flows, create or cancel runs" in refused["errors"][0]["message"]
        )
        refused = graphql_from_page(
            page,
            read_only,
            "mutation($id: String!) { cancelFlowRun(flowRunId: $id) { state } }",
            {"id": run.id},
        )
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        with stack.client() as client:
            assert client.flow_run(run.id).state == "Running"
            key_id = next(k["id"] for k in client.api_keys() if k["name"] == "dashboard screen")
            client.revoke_api_key(key_id)
        page.reload()  # the tab checks its key again: a revoked key is signed out, with the reason
        page.wait_for_selector("#signin-error")
        assert "refused this key (invalid or revoked API key)" in page.inner_text("#signin-error")
    finally:
        with stack.client() as client:
            client.cancel_flow_run(run.id)


MAPPED = [
    "%load_ext nbflow\n%flow name mapped_demo",
    "%%params\npages = [1, 2, 3, 4]",
    "%%task size --map pages\nsize = pages * 10",
    "%%task total\ntotal = sum(size)",
]


def test_a_mapped_task_is_one_node_counting_its_children(page: Page, stack: UiStack) -> None:
    stack.register("mapped_demo", MAPPED)
    with stack.client() as client:
        run_id = client.create_flow_run(flow_name="mapped_demo").id
    sign_in(page, stack.url, stack.admin_key, f"/runs/{run_id}")
    page.wait_for_selector(".ui-run-page[data-run-state='Success']", timeout=LIVE)
    page.wait_for_selector(node(page, "size", "Success"), timeout=LIVE)
    assert "4 success" in (page.locator(node(page, "size")).text_content() or "")
    assert page.locator(".ui-run-dag g.nbflow-node[data-task^='size[']").count() == 0  # children: no nodes
