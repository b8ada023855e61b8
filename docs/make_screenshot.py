"""Make docs/widget.png: the DAG widget mid-run in a real JupyterLab (headless Chromium).

    python docs/make_screenshot.py

Writes a small demo notebook into a temporary folder, starts `jupyter lab`,
runs all cells with Playwright and Debian's chromium, and captures the widget
while tasks are still running.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "browser"))

from conftest import CHROMIUM, CHROMIUM_ARGS, JupyterLab  # noqa: E402
from test_widget_in_jupyterlab import open_notebook  # noqa: E402

CELLS = [
    "%load_ext nbflow\n%flow name daily_sales",
    "%%setup\nimport random, time\n\ndef slow(seconds):\n    time.sleep(seconds)",
    "%%params\nday = '2024-06-01'\nregions = ['eu', 'us', 'apac']",
    "%%task extract --no-run\nslow(1)\norders = {r: random.Random(r).randint(50, 150) for r in regions}",
    "%%task eu_report --no-run\nslow(1.5)\neu = orders['eu']",
    "%%task us_report --no-run\nslow(6)\nus = orders['us']",
    "%%task apac_report --retries 2 --retry-delay 1 --no-run\nslow(0.5)\nraise ConnectionError('apac warehouse unreachable')",
    "%%task fx_rates --no-run\nslow(0.8)\nrates = {'eu': 1.08, 'us': 1.0, 'apac': 0.0066}",
    "%%task totals --no-run\nslow(1)\ntotal = eu * rates['eu'] + us",
    "%%task publish --no-run\nslow(1)\npublished = round(total, 2)",
    "%%task alert --trigger any_failed --upstream apac_report --no-run\nprint('paging the on-call engineer')",
    "%flow run",
]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
        nbformat.write(nb, str(root / "daily_sales.ipynb"))
        lab = JupyterLab(root, {**os.environ, "NBFLOW_HOME": str(root / "home")})
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=2)
                open_notebook(page, lab, "daily_sales.ipynb")
                page.click(".lm-MenuBar-itemLabel:text-is('Run')")
                page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
                widget = page.locator(".nbflow-widget").first
                widget.wait_for(timeout=60_000)
                # Mid-run: apac_report failed after its retries and alert ran, while the long
                # us_report branch is still running and totals/publish wait for it.
                page.wait_for_selector(
                    ".nbflow-widget g.nbflow-node[data-task='alert'][data-state='Success']", timeout=60_000
                )
                page.wait_for_selector(
                    ".nbflow-widget g.nbflow-node[data-task='us_report'][data-state='Running']", timeout=5_000
                )
                time.sleep(0.3)
                widget.scroll_into_view_if_needed()
                out = HERE / "widget.png"
                widget.screenshot(path=str(out))
                print(f"wrote {out}")
                browser.close()
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
