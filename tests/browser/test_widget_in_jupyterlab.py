"""The DAG widget in a real JupyterLab, as a user sees it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import JupyterLab

pytestmark = pytest.mark.browser


def accept_kernel_dialog(page) -> None:  # type: ignore[no-untyped-def]
    """JupyterLab or Notebook 7 may ask which kernel to start; a user takes the preferred one."""
    select = page.locator(".jp-Dialog button.jp-mod-accept")
    try:
        select.wait_for(timeout=3_000)
        select.click()
    except Exception:  # no dialog this time
        pass


def open_notebook(page, jupyter: JupyterLab, notebook: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{jupyter.url}/lab/tree/{notebook}")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    accept_kernel_dialog(page)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)


def open_and_run_all(page, jupyter: JupyterLab, notebook: str) -> None:  # type: ignore[no-untyped-def]
    open_notebook(page, jupyter, notebook)
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    # The run is over when the summary says every task finished.
    page.wait_for_selector(".nbflow-summary[data-running='0'][data-total='5']", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)


def test_widget_shows_the_run_the_error_and_runs_again(page, jupyter: JupyterLab) -> None:  # type: ignore[no-untyped-def]
    open_and_run_all(page, jupyter, "05_shell_task.ipynb")
    widget = page.locator(".nbflow-widget").first
    widget.scroll_into_view_if_needed()
    # Every task of the flow is drawn (parameters too).
    for slug in ("workdir", "greeting", "prepare", "total", "check_missing"):
        assert widget.locator(f"g.nbflow-node[data-task='{slug}']").count() == 1, slug
    assert widget.locator("g.nbflow-node[data-task='total'][data-state='Success']").count() == 1
    failed = widget.locator("g.nbflow-node[data-task='check_missing'][data-state='Failed']")
    assert failed.count() == 1
    summary = widget.locator(".nbflow-summary")
    assert summary.get_attribute("data-failed") == "1"
    assert summary.get_attribute("data-done") == "5"
    legend = widget.locator(".nbflow-legend")
    assert "Failed" in legend.inner_text() and "Success" in legend.inner_text()

    # Clicking the failed node shows its error.
    failed.click()
    detail = widget.locator(".nbflow-detail")
    detail.wait_for()
    message = detail.locator(".nbflow-detail-message")
    assert "shell script exited with code 1" in message.inner_text()
    page.screenshot(path=str(jupyter.root / "after-click.png"))

    # The run button runs the flow again: a new flow run, every task done again.
    first_run = summary.get_attribute("data-run-id")
    assert first_run
    widget.locator("button[data-action='run']").click()
    page.wait_for_function(
        "([sel, old]) => { const s = document.querySelector(sel); return s && s.dataset.runId && s.dataset.runId !== old"
        " && s.dataset.running === '0' && s.dataset.done === '5'; }",
        arg=[".nbflow-widget .nbflow-summary", first_run],
        timeout=60_000,
    )
    assert widget.locator("g.nbflow-node[data-task='check_missing'][data-state='Failed']").count() == 1
    assert re.search(r"\b5\b", summary.inner_text())
