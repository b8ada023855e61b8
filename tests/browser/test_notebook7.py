"""Without JupyterLab: a Notebook 7 page shows the flow widget and the text messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from test_widget_in_jupyterlab import accept_kernel_dialog

if TYPE_CHECKING:
    from conftest import JupyterLab

pytestmark = pytest.mark.browser


def test_a_notebook_7_page_shows_the_widget_and_the_messages(page, notebook7: JupyterLab) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{notebook7.url}/notebooks/05_shell_task.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    accept_kernel_dialog(page)
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_selector(".nbflow-summary[data-running='0'][data-total='5']", timeout=120_000)
    widget = page.locator(".nbflow-widget").first
    assert widget.locator("g.nbflow-node[data-task='check_missing'][data-state='Failed']").count() == 1
    assert widget.locator("g.nbflow-node[data-task='total'][data-state='Success']").count() == 1
    # The run's text summary is printed under the cell, as in any frontend.
    page.get_by_text("check_missing: Failed").first.wait_for(timeout=30_000)
