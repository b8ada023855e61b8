"""nbflow's JupyterLab extension in a real JupyterLab: task cell badges and the document order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_widget_in_jupyterlab import open_and_run_all, open_notebook

if TYPE_CHECKING:
    from conftest import JupyterLab

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
TASK_CELLS = {"prepare": "Success", "total": "Success", "check_missing": "Failed"}


def badge(page, task: str):  # type: ignore[no-untyped-def]
    return page.locator(f".jp-Cell .nbflow-cell-badge[data-task='{task}']")


def task_cell(page, task: str):  # type: ignore[no-untyped-def]
    return page.locator(".jp-CodeCell", has=page.locator(f".nbflow-cell-badge[data-task='{task}']"))


def test_run_all_turns_every_task_badge_to_its_final_state_and_a_failed_badge_opens_its_error(
    page, jupyter: JupyterLab
) -> None:  # type: ignore[no-untyped-def]
    open_and_run_all(page, jupyter, "05_shell_task.ipynb")
    for task, state in TASK_CELLS.items():
        badge(page, task).and_(page.locator(f"[data-state='{state}']")).wait_for(timeout=60_000)
    # Each badge sits in its own task cell, beside the prompt, and only task cells have one.
    assert page.locator(".jp-Cell .nbflow-cell-badge").count() == len(TASK_CELLS)
    for task in TASK_CELLS:
        cell = task_cell(page, task)
        assert "%%" in cell.locator(".jp-InputArea-editor").inner_text()
        assert task in cell.locator(".jp-InputArea-editor").inner_text()
        box, prompt = badge(page, task).bounding_box(), cell.locator(".jp-InputPrompt").bounding_box()
        assert box is not None and prompt is not None
        assert box["x"] + box["width"] <= prompt["x"] + prompt["width"] + 1  # in the prompt column
    assert "✓" in badge(page, "total").inner_text()
    assert "✗" in badge(page, "check_missing").inner_text()
    assert "exited with code 1" in (badge(page, "check_missing").get_attribute("title") or "")

    # Clicking the failed badge opens the task's error and logs under its cell.
    badge(page, "check_missing").click()
    detail = page.locator(".nbflow-cell-detail[data-task='check_missing']")
    detail.wait_for(timeout=30_000)
    assert detail.get_attribute("data-state") == "Failed"
    assert "shell script exited with code 1" in detail.inner_text()
    if os.environ.get("NBFLOW_SCREENSHOT_DOCS"):  # regenerates the README's docs/badges.png
        for close in page.locator(".jp-toast-button:text-is('No'), .Toastify__close-button").all():
            close.click()
        page.locator(".Toastify__toast").first.wait_for(state="detached", timeout=10_000)
        task_cell(page, "prepare").scroll_into_view_if_needed()
        page.screenshot(path=str(REPO / "docs" / "badges.png"))
    # Clicking it again closes it.
    badge(page, "check_missing").click()
    detail.wait_for(state="detached", timeout=10_000)


def test_moving_a_cell_changes_the_order_the_kernel_uses(page, jupyter: JupyterLab) -> None:  # type: ignore[no-untyped-def]
    import nbformat

    cells = [
        "%load_ext nbflow",
        "%%task first --no-run\nx = 1",
        "%%task third --no-run\ny = x + 1",
        "%%task second --no-run\nx = 10",
        "%flow run\nprint('y is', y)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, jupyter.root / "order.ipynb")
    open_notebook(page, jupyter, "order.ipynb")
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    last = page.locator(".jp-CodeCell").nth(4)
    last.locator(".jp-OutputArea-output:has-text('y is 2')").wait_for(timeout=90_000)  # third reads first's x

    # Move "second" above "third", as a user does with the cell's Move up button.
    second = page.locator(".jp-CodeCell").nth(3)
    second.locator(".jp-InputPrompt").click()
    second.locator(
        ".jp-cell-toolbar button[data-command='notebook:move-cell-up'], .jp-cell-toolbar [title*='Move this cell up']"
    ).first.click()
    assert "second" in page.locator(".jp-CodeCell").nth(2).inner_text()
    # The kernel says which edges the move changed.
    page.get_by_text("New: second → third").first.wait_for(timeout=30_000)

    # Run only the last cell: the flow now follows the document, so third reads second's x.
    last = page.locator(".jp-CodeCell").nth(4)
    last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    last.locator(".jp-OutputArea-output:has-text('y is 11')").wait_for(timeout=90_000)


def test_a_task_cells_toolbar_reruns_from_it_and_shows_it_in_the_widget(page, jupyter: JupyterLab) -> None:  # type: ignore[no-untyped-def]
    open_and_run_all(page, jupyter, "05_shell_task.ipynb")
    badge(page, "check_missing").and_(page.locator("[data-state='Failed']")).wait_for(timeout=60_000)
    cell = task_cell(page, "total")
    cell.locator(".jp-InputPrompt").click()  # the active cell shows its toolbar
    toolbar = cell.locator(".jp-cell-toolbar")
    rerun = toolbar.get_by_text("↻ from here")
    rerun.wait_for(timeout=10_000)
    # A plain cell gets no nbflow actions.
    plain = page.locator(".jp-CodeCell").nth(0)
    plain.locator(".jp-InputPrompt").click()
    plain.locator(".jp-cell-toolbar").get_by_text("↻ from here").wait_for(state="hidden", timeout=10_000)

    cell.locator(".jp-InputPrompt").click()
    rerun.click()
    # total runs again on prepare's reused result; check_missing is not part of that run.
    badge(page, "prepare").and_(page.locator("[data-state='Cached']")).wait_for(timeout=60_000)
    assert badge(page, "total").get_attribute("data-state") == "Success"
    assert badge(page, "check_missing").get_attribute("data-state") == "Failed"

    toolbar.get_by_text("◈ in flow").click()
    title = page.locator(".nbflow-widget .nbflow-detail:not([hidden]) .nbflow-detail-title")
    title.wait_for(timeout=10_000)
    assert "total" in title.inner_text()


def test_a_reloaded_page_gets_its_badges_back_from_the_running_kernel(page, jupyter: JupyterLab) -> None:  # type: ignore[no-untyped-def]
    open_and_run_all(page, jupyter, "05_shell_task.ipynb")
    badge(page, "check_missing").and_(page.locator("[data-state='Failed']")).wait_for(timeout=60_000)
    page.reload()  # the kernel keeps running; the new page opens its own comm
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    for task, state in TASK_CELLS.items():
        badge(page, task).and_(page.locator(f"[data-state='{state}']")).wait_for(timeout=60_000)


def test_a_task_cell_rendered_late_still_gets_its_badge(page, jupyter: JupyterLab) -> None:  # type: ignore[no-untyped-def]
    """A long notebook renders far cells in idle time, after the kernel may have sent the badges."""
    import nbformat

    filler = [nbformat.v4.new_markdown_cell(f"## Section {i}\n\n" + "Some prose. " * 40) for i in range(300)]
    cells = [
        nbformat.v4.new_code_cell("%load_ext nbflow"),
        nbformat.v4.new_code_cell("%%task near\nnear = 1"),
        *filler,
        nbformat.v4.new_code_cell("%%task far\nfar = near + 1"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, jupyter.root / "long.ipynb")
    open_notebook(page, jupyter, "long.ipynb")
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    badge(page, "far").and_(page.locator("[data-state='Success']")).wait_for(state="attached", timeout=60_000)

    page.reload()  # the badges come from the kernel at once; the far cell renders later
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    badge(page, "near").and_(page.locator("[data-state='Success']")).wait_for(timeout=60_000)
    # Without anyone scrolling: the notebook renders the far cell in idle time, and it gets its badge.
    far = badge(page, "far").and_(page.locator("[data-state='Success']"))
    far.wait_for(state="attached", timeout=60_000)
    assert "✓" in (far.text_content() or "")
    assert "task far: Success" in (far.get_attribute("aria-label") or "")
