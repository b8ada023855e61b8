"""Make docs/ui-dashboard.png and docs/ui-run.png: the web UI with a real server and agent.

    python docs/make_ui_screenshots.py

Starts `nbflow server start` and `nbflow agent start` in a temporary folder, registers
three example flows with `nbflow register` (one needs a `gpu` label no agent has, so the
dashboard warns about it), runs a few of them through the agent, then captures the
dashboard and a run page while the run is still going (headless Debian chromium).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "browser"))

from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from server_helpers import wait_for  # noqa: E402
from ui_stack import UiStack, sign_in  # noqa: E402

DAILY_SALES = [
    "%load_ext nbflow\n%flow name daily_sales",
    "%%setup\nimport random, time\n\ndef slow(seconds):\n    time.sleep(seconds)",
    "%%params\nday = '2024-06-01'\nregions = ['eu', 'us', 'apac']\nus_seconds = 1",
    "%%task extract\nslow(1)\norders = {r: random.Random(r).randint(50, 150) for r in regions}\n"
    "print(f'extracted {sum(orders.values())} orders for {day}')",
    "%%task eu_report\nslow(1.5)\neu = orders['eu']\nprint('eu orders', eu)",
    "%%task us_report\nfor i in range(us_seconds):\n    slow(1)\n    print(f'us: scanned shard {i + 1} of {us_seconds}')\nus = orders['us']",
    "%%task apac_report --retries 2 --retry-delay 1\nslow(0.5)\nraise ConnectionError('apac warehouse unreachable')",
    "%%task fx_rates\nslow(0.8)\nrates = {'eu': 1.08, 'us': 1.0, 'apac': 0.0066}",
    "%%task totals\nslow(1)\ntotal = eu * rates['eu'] + us\nprint('total', round(total, 2))",
    "%%task publish\nslow(1)\npublished = round(total, 2)",
    "%%task alert --trigger any_failed --upstream apac_report\nprint('paging the on-call engineer')",
]
HOURLY = [
    "%load_ext nbflow\n%flow name hourly_refresh",
    "%%params\nsource = 'warehouse'",
    "%%task pull\nrows = list(range(100))\nprint(f'pulled {len(rows)} rows from {source}')",
    "%%task dedupe\nrows = sorted(set(rows))",
    "%%task load\nloaded = len(rows)\nprint('loaded', loaded)",
]
TRAIN = [
    "%load_ext nbflow\n%flow name gpu_training",
    "%%task features\nx = [1, 2, 3]",
    "%%task train\nmodel = sum(x)",
]


def finished(stack: UiStack, run_id: str) -> bool:
    with stack.client() as client:
        return client.flow_run(run_id).state in {"Success", "Failed", "Cancelled"}


def history(stack: UiStack) -> str:
    """A few finished runs for the dashboard; returns a live daily_sales run."""
    stack.register("daily_sales", DAILY_SALES, "--schedule-cron", "0 6 * * *")
    stack.register("hourly_refresh", HOURLY, "--schedule-every", "1h")
    stack.register("gpu_training", TRAIN, "--schedule-every", "6h", "--labels", "gpu")
    with stack.client() as client:
        done = [client.create_flow_run(flow_name="hourly_refresh").id for _ in range(3)]
        done.append(client.create_flow_run(flow_name="daily_sales", parameters={"day": "2024-05-31"}).id)
    for run_id in done:
        wait_for(lambda run_id=run_id: finished(stack, run_id), timeout=90, what="the example runs")
    with stack.client() as client:
        return client.create_flow_run(
            flow_name="daily_sales", parameters={"day": "2024-06-01", "us_seconds": 8}
        ).id


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        stack = UiStack(Path(tmp) / "home", scheduler_interval=1)
        try:
            live = history(stack)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(
                    viewport={"width": 1366, "height": 1020}, device_scale_factor=1.5, reduced_motion="reduce"
                )  # no pulse caught mid-fade
                sign_in(page, stack.url, stack.admin_key, f"/runs/{live}?task=apac_report&tab=timeline")
                page.wait_for_selector(
                    ".ui-run-dag g.nbflow-node[data-task='alert'][data-state='Success']", timeout=60_000
                )
                page.wait_for_selector(
                    ".ui-run-dag g.nbflow-node[data-task='us_report'][data-state='Running']"
                )
                time.sleep(1.2)
                page.screenshot(path=str(HERE / "ui-run.png"))
                page.set_viewport_size({"width": 1366, "height": 768})  # a laptop screen
                page.goto(stack.url + "/")
                page.wait_for_selector("[data-testid='stranded']", timeout=30_000)
                page.wait_for_selector("table[aria-label='Agents'] tr[data-agent]")
                time.sleep(0.5)
                page.screenshot(path=str(HERE / "ui-dashboard.png"))
                browser.close()
            print(f"wrote {HERE / 'ui-run.png'} and {HERE / 'ui-dashboard.png'}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
