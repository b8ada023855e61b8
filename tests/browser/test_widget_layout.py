"""The DAG widget's layout in a real JupyterLab: the detail panel never hides a node."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from test_widget_in_jupyterlab import open_and_run_all

if TYPE_CHECKING:
    from conftest import JupyterLab

pytestmark = pytest.mark.browser


def test_the_rightmost_node_stays_visible_and_clickable_with_the_detail_panel_open(
    page, jupyter: JupyterLab
) -> None:  # type: ignore[no-untyped-def]
    open_and_run_all(page, jupyter, "05_shell_task.ipynb")
    widget = page.locator(".nbflow-widget").first
    widget.scroll_into_view_if_needed()
    nodes = widget.locator("g.nbflow-node")
    # Open the detail panel on the leftmost node first.
    boxes = {
        nodes.nth(i).get_attribute("data-task"): nodes.nth(i).bounding_box() for i in range(nodes.count())
    }
    leftmost = min(boxes, key=lambda slug: boxes[slug]["x"])  # type: ignore[index]
    widget.locator(f"g.nbflow-node[data-task='{leftmost}'] rect").first.click()
    widget.locator(".nbflow-detail:not([hidden])").wait_for()

    canvas = widget.locator(".nbflow-canvas-wrap").bounding_box()
    assert canvas is not None
    boxes = {
        nodes.nth(i).get_attribute("data-task"): nodes.nth(i).bounding_box() for i in range(nodes.count())
    }
    rightmost = max(boxes, key=lambda slug: boxes[slug]["x"] + boxes[slug]["width"])  # type: ignore[index]
    box = boxes[rightmost]
    assert box is not None
    # Every node is inside the canvas with the panel open: none is cut or covered.
    for slug, b in boxes.items():
        assert b is not None
        assert canvas["x"] <= b["x"] and b["x"] + b["width"] <= canvas["x"] + canvas["width"] + 1, slug
    widget.locator(f"g.nbflow-node[data-task='{rightmost}'] rect").first.click()
    title = widget.locator(".nbflow-detail .nbflow-detail-title")
    page.wait_for_function(
        "([el, name]) => el.textContent.includes(name)",
        arg=[title.element_handle(), rightmost],
        timeout=10_000,
    )
    # Fit shows the whole graph, the panel still open.
    widget.locator("button[data-action='fit']").click()
    for i in range(nodes.count()):
        b = nodes.nth(i).bounding_box()
        assert b is not None and b["x"] + b["width"] <= canvas["x"] + canvas["width"] + 1
