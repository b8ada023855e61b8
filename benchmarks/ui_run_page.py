"""Web UI benchmark: the run page of a 1,000-task run with 10,000 log lines, in headless Chromium.

A real `nbflow server start` (SQLite, in a temporary folder) is seeded through the GraphQL
API with a 1,000-task flow (the same generated shape as widget_render.py) and two runs:

  (a) first render: a finished run whose 1,000 tasks ran (2,000 task states) and wrote
      10,000 log lines. Timed from navigation start (the browser's clock) to the first
      frame showing the drawn DAG with every node in its state and the first log rows: this
      includes fetching the bundle, checking the key, opening the live feed, loading the
      run's history and its 10,000 log lines over GraphQL, laying out the DAG and painting;
  (b) applying 10,000 live events to an open page of a running run: 4,000 state events
      (every task Running and finished, 1,000 retries) and 6,000 log lines, handed to the
      page's feed handler (`window.nbflowRunPage.ingest`, the function the SSE reader
      calls) once as one burst and once in batches of 100 as the feed delivers them;
      timed to the painted frame, with the longest main-thread blocks;
  (c) moving inside the app from (a) to the running run of the same flow (its layout is reused).

Run from the repository root after `pip install -e .` (which builds nbflow/static/ui):

    .venv/bin/python benchmarks/ui_run_page.py

Needs Debian's chromium (/usr/bin/chromium) and Playwright for Python.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from nbflow.core.record import LogRecord, StateRecord, new_id

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from server_helpers import ServerProcess, flow_change, task_change  # noqa: E402
from widget_render import CHROMIUM, CHROMIUM_ARGS, _cpu, make_graph  # noqa: E402

STORAGE = {"kind": "local", "location": "/srv/bench.py", "sha256": "d" * 64}
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"]  # a realistic mix, not the level list

WATCH = """
  const longtasks = [];
  const observer = new PerformanceObserver((l) => { for (const e of l.getEntries()) longtasks.push(e.duration); });
  observer.observe({ entryTypes: ["longtask"] });
  let last = performance.now(), running = true; const gaps = [];
  const tick = (t) => { gaps.push(t - last); last = t; if (running) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  window.stopWatch = () => { running = false; observer.disconnect(); gaps.sort((a, b) => a - b);
    return { longestTaskMs: Math.max(0, ...longtasks), maxFrameGapMs: gaps.at(-1) ?? 0,
             p95FrameGapMs: gaps[Math.floor(gaps.length * 0.95)] ?? 0, frames: gaps.length }; };
"""

# The watcher starts once the events are in the page (handing them over is not the page's work).
APPLY = (
    """async ([events, batch]) => {
  """
    + WATCH
    + """
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const page = window.nbflowRunPage;
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += batch) {
    page.ingest(events.slice(i, i + batch));
    if (batch < events.length) await new Promise((r) => setTimeout(r, 0));
  }
  const applied = performance.now();
  await frame(); await frame();
  const totalMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 100));
  return { totalMs, applyMs: applied - t0, ...window.stopWatch(),
           lines: page.logs.lines.length, done: document.querySelector(".nbflow-summary").dataset.done };
}"""
)


def seed(server: ServerProcess, graph: dict[str, Any]) -> tuple[str, str]:
    """Register the flow; a finished run with 2,000 task states and 10,000 logs; a running run."""
    with server.client() as client:
        client.register_flow(graph["name"], graph, STORAGE)
        done = client.create_flow_run(flow_name=graph["name"]).id
        live = client.create_flow_run(flow_name=graph["name"]).id
        versions = {}
        for run in (done, live):
            version = 1
            for state in ("Submitted", "Running"):
                (r,) = client.set_flow_run_states([flow_change(run, state, version)])
                assert r.ok, r.error
                version = r.version
            versions[run] = version
        t0 = time.time() - 600
        slugs = [t["slug"] for t in graph["tasks"]]
        states = []
        for i, slug in enumerate(slugs):
            tid, execution = str(uuid.uuid4()), versions[done] - 1  # the claim's execution
            final = "Failed" if i % 97 == 0 else "Success"
            for state, ts in (("Running", t0 + i * 0.3), (final, t0 + i * 0.3 + 2)):
                states.append(
                    task_change(done, tid, slug, state, attempt=1, execution=execution, timestamp=ts)
                )
        for i in range(0, len(states), 1000):
            assert all(r.ok for r in client.set_task_run_states(states[i : i + 1000])), "seeding task states"
        logs = log_records(done, slugs, 10_000, t0, versions[done] - 1)
        for i in range(0, len(logs), 5000):
            client.write_run_logs([line.to_wire() for line in logs[i : i + 5000]])
        (r,) = client.set_flow_run_states([flow_change(done, "Failed", versions[done])])
        assert r.ok, r.error
    return done, live


def log_records(run: str, slugs: list[str], n: int, t0: float, execution: int = 0) -> list[LogRecord]:
    rng = random.Random(5)
    return [
        LogRecord(flow_run_id=run, level=rng.choice(LEVELS), message=f"processed batch {i} of {slugs[i % len(slugs)]}: "
                  f"{rng.randint(1, 10**6)} rows", timestamp=t0 + i * 0.05, task=slugs[i % len(slugs)], seq=i,
                  execution=execution)
        for i in range(n)
    ]  # fmt: skip


def live_events(run: str, slugs: list[str]) -> list[dict[str, Any]]:
    """10,000 feed events: every task runs and finishes, 1,000 retries, 6,000 log lines."""
    rng = random.Random(3)
    ts = time.time()
    events: list[dict[str, Any]] = []
    retried = set(rng.sample(slugs, 500))
    logs = iter(log_records(run, slugs, 6000, ts))
    for slug in slugs:
        ts += 0.01
        events.append(_state(run, slug, "Running", ts, 1))
        attempt = 1
        if slug in retried:
            for _ in range(2 if len(events) % 2 else 1):
                events += [
                    _state(run, slug, "Retrying", ts, attempt),
                    _state(run, slug, "Running", ts + 0.001, attempt + 1),
                ]
                attempt += 1
        events.append(_state(run, slug, "Success", ts + 0.005, attempt))
    states = events[:4000]
    mixed: list[dict[str, Any]] = []
    for i, event in enumerate(states):
        mixed.append(event)
        for _ in range(3 if i % 2 else 1):
            line = next(logs, None)
            if line:
                mixed.append(line.to_wire())
    return mixed[:10_000]


def _state(run: str, slug: str, state: str, ts: float, attempt: int) -> dict[str, Any]:
    return StateRecord(
        flow_run_id=run, state=state, transition_id=new_id(), timestamp=ts, task_run_id=f"tr-{slug}", task=slug,
        attempt=attempt,
    ).to_wire()  # fmt: skip


def sign_in(browser: Any, url: str, key: str) -> Any:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(url + "/")
    page.fill("#api-key", key)
    page.click("form button[type=submit]")
    page.wait_for_selector("header.ui-top")
    return page


NAVIGATE = """async (path) => {
  const t0 = performance.now();
  window.history.pushState(null, "", path);
  window.dispatchEvent(new Event("nbflow:navigate"));  // what an in-app link click does
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  while (!document.querySelector(".ui-run-page[data-run-state='Running'] .ui-run-dag g.nbflow-node")) await frame();
  await frame(); await frame();
  return performance.now() - t0;
}"""


# Injected before the page's own scripts: notes the first frame that shows the drawn DAG with
# its states and the first log rows (polling from the test would add its own latency).
FIRST_FRAME = """(() => {
  const check = () => {
    if (document.querySelector(".ui-run-dag g.nbflow-node[data-state='Success']") && document.querySelector(".ui-log-row")) {
      window.nbflowFirstRender = performance.now();
    } else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();"""


def first_render(browser: Any, url: str, key: str, run: str, other: str) -> dict[str, Any]:
    page = sign_in(browser, url, key)
    page.add_init_script(FIRST_FRAME)
    page.goto(f"{url}/runs/{run}")  # a cold page load: the bundle, the key check, the feed, the data
    page.wait_for_selector(".ui-run-dag g.nbflow-node[data-state='Success']", timeout=60_000)
    page.wait_for_selector(".ui-log-row", timeout=60_000)
    page.wait_for_function("() => window.nbflowFirstRender !== undefined")
    ms = page.evaluate("window.nbflowFirstRender")
    counts = page.evaluate(
        """() => ({ marks: Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, m.startTime])),
                    nodes: document.querySelectorAll('g.nbflow-node').length,
                    lines: window.nbflowRunPage.logs.lines.length,
                    failed: document.querySelectorAll("g.nbflow-node[data-state='Failed']").length })"""
    )
    # (c) then, inside the app, to another run of the same flow: the layout is reused.
    counts["navigateMs"] = page.evaluate(NAVIGATE, f"/runs/{other}")
    page.close()
    return {"firstRenderMs": ms, **counts}


def apply_events(
    browser: Any, url: str, key: str, run: str, events: list[dict[str, Any]], batch: int
) -> dict[str, Any]:
    page = sign_in(browser, url, key)
    page.goto(f"{url}/runs/{run}")
    page.wait_for_selector(".ui-run-dag g.nbflow-node", timeout=60_000)
    result = page.evaluate(APPLY, [events, batch])
    page.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="cold pages per measurement (default 3)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    graph = make_graph(1000)
    graph["name"] = "bench_1000"
    results: dict[str, Any] = {"render": [], "burst": [], "streamed": []}
    with tempfile.TemporaryDirectory(prefix="nbflow-ui-bench-") as tmp:
        home = Path(tmp)
        server = ServerProcess(home, f"sqlite+aiosqlite:///{home / 'bench.db'}", heartbeat_timeout=3600,
                               submitted_timeout=3600, scheduler_interval=60).start()  # fmt: skip
        try:
            done, live = seed(server, graph)
            events = live_events(live, [t["slug"] for t in graph["tasks"]])
            assert len(events) == 10_000
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                results["chromium"] = browser.version
                for _ in range(args.repeat):
                    results["render"].append(
                        first_render(browser, server.url, server.admin_key or "", done, live)
                    )
                    results["burst"].append(
                        apply_events(browser, server.url, server.admin_key or "", live, events, 10_000)
                    )
                    results["streamed"].append(
                        apply_events(browser, server.url, server.admin_key or "", live, events, 100)
                    )
                browser.close()
        finally:
            server.stop()
    report(results, events)
    if args.json:
        print(json.dumps(results, indent=1))


def report(results: dict[str, Any], events: list[dict[str, Any]]) -> None:
    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    def mark(name: str) -> float:
        return statistics.median(r["marks"].get(name, float("nan")) for r in results["render"])

    states = sum(e["kind"] == "state" for e in events)
    render = results["render"][0]
    each = ", ".join(f"{r['firstRenderMs']:.0f}" for r in results["render"])
    print("\n".join([
        f"machine: {_cpu()}; Chromium {results['chromium']} headless, software rendering; "
        f"median of {len(results['render'])} cold pages",
        f"(a) first render of the run page, 1,000 tasks ({render['failed']} failed) and {render['lines']:,} log lines: "
        f"{med('render', 'firstRenderMs'):.0f} ms from navigation start "
        f"(runs: {each}; target < 1000)",
        f"    of which: run history loaded at {mark('nbflow:run-loaded'):.0f} ms, DAG laid out and drawn at "
        f"{mark('nbflow:dag-drawn'):.0f} ms, 10,000 log lines loaded at {mark('nbflow:logs-loaded'):.0f} ms",
        f"(b) 10,000 live events ({states:,} states, {len(events) - states:,} log lines), one burst: "
        f"{med('burst', 'totalMs'):.0f} ms to painted (folding {med('burst', 'applyMs'):.0f} ms; "
        f"longest block {med('burst', 'longestTaskMs'):.0f} ms; target < 1000)",
        f"    in batches of 100 as the feed delivers them: {med('streamed', 'totalMs'):.0f} ms to painted "
        f"(frame gaps: longest {med('streamed', 'maxFrameGapMs'):.0f} ms, 95th percentile "
        f"{med('streamed', 'p95FrameGapMs'):.0f} ms; longest block {med('streamed', 'longestTaskMs'):.0f} ms)",
        f"    after them: {results['burst'][0]['done']} of 1000 tasks done, {results['burst'][0]['lines']:,} log lines",
        f"(c) from that page to another run of the same flow, inside the app: {med('render', 'navigateMs'):.0f} ms "
        "(the layout is reused)",
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
