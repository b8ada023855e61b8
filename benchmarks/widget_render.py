"""Widget rendering benchmark: the shared DAG renderer (nbflow/static/dag.js) in headless Chromium.

Measures, on a cold page each time:
  (a) first full render of a 1,000-task DAG (chains, fan-outs, fan-ins and a
      few long edges from shared setup tasks): layout + SVG + first paint;
  (b) applying 10,000 engine state events to it, once as one burst and once
      streamed in batches of 100 (the way server-sent events or throttled
      kernel syncs arrive), with the longest main-thread block seen meanwhile
      (longtask observer and requestAnimationFrame gaps);
plus the render time at other sizes and the summary-only view of a
10,000-task flow, which justify the large-flow threshold.

Run from the repository root after `pip install -e .` (which builds dag.js):

    .venv/bin/python benchmarks/widget_render.py

Needs Debian's chromium (/usr/bin/chromium) and Playwright for Python.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "nbflow" / "static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PAGE = """<!doctype html>
<meta charset="utf-8">
<link rel="stylesheet" href="dag.css">
<div id="host" style="width: 1200px; height: 700px"></div>
<script type="module">
import { createDagView } from "./dag.js";

const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
const painted = async () => { await frame(); await frame(); };
// Longtask entries arrive asynchronously: give them time before reading.
const settle = () => new Promise((r) => setTimeout(r, 100));

// Main-thread blocking while something runs: longtasks and gaps between frames.
function watchBlocking() {
  const longtasks = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longtasks.push(e.duration);
  });
  observer.observe({ entryTypes: ["longtask"] });
  let last = performance.now(), running = true;
  const gaps = [];
  const tick = (t) => { gaps.push(t - last); last = t; if (running) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  return () => {
    running = false;
    observer.disconnect();
    gaps.sort((a, b) => a - b);
    const p95 = gaps[Math.floor(gaps.length * 0.95)] ?? 0;
    return { longestTaskMs: Math.max(0, ...longtasks), longtasks: longtasks.length,
             maxFrameGapMs: gaps.at(-1) ?? 0, p95FrameGapMs: p95, frames: gaps.length };
  };
}

window.bench = {
  async render(graph, maxNodes) {
    const host = document.getElementById("host");
    const t0 = performance.now();
    const view = createDagView(host, maxNodes ? { maxNodes } : {});
    view.setGraph(graph);
    view.flush();
    const drawn = performance.now();
    await painted();
    window.view = view;
    return { renderMs: performance.now() - t0, syncMs: drawn - t0,
             nodes: document.querySelectorAll("g.nbflow-node").length, deferred: view.deferred() };
  },
  async burst(events) {
    const stop = watchBlocking();
    const t0 = performance.now();
    window.view.applyEvents(events);
    window.view.flush();
    const applied = performance.now();
    await painted();
    const totalMs = performance.now() - t0;
    await settle();
    return { totalMs, applyMs: applied - t0, ...stop(), summary: window.view.summary() };
  },
  async streamed(events, batch) {
    const stop = watchBlocking();
    const t0 = performance.now();
    for (let i = 0; i < events.length; i += batch) {
      window.view.applyEvents(events.slice(i, i + batch));
      await new Promise((r) => setTimeout(r, 0));
    }
    await painted();
    const totalMs = performance.now() - t0;
    await settle();
    return { totalMs, ...stop(), summary: window.view.summary() };
  },
  states() {
    const counts = {};
    for (const g of document.querySelectorAll("g.nbflow-node")) {
      const s = g.getAttribute("data-state");
      counts[s] = (counts[s] || 0) + 1;
    }
    return counts;
  },
};
window.ready = true;
</script>
"""


def make_graph(n: int, seed: int = 7) -> dict[str, Any]:
    """A flow of n tasks shaped like real pipelines: setup tasks, chains, fan-out and fan-in."""
    rng = random.Random(seed)
    tasks: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []

    def add(slug: str, upstream: list[str], kind: str = "task") -> None:
        tasks.append({"slug": slug, "name": slug, "kind": kind, "order": len(tasks), "upstream": upstream})
        edges.extend({"upstream": u, "downstream": slug, "key": f"{u}_out"} for u in upstream)

    setup = [f"config_{i}" for i in range(3)]
    for slug in setup:
        add(slug, [], kind="parameter")
    join: str | None = None
    stage = 0
    while len(tasks) < n:
        heads = []
        for branch in range(rng.choice([1, 2, 3, 4, 8, 16])):
            prev = join
            for step in range(rng.randint(1, 5)):
                if len(tasks) >= n:
                    break
                slug = f"s{stage}_b{branch}_{step}"
                upstream = [prev] if prev else []
                if rng.random() < 0.05:  # a late task reading a setup value: a long edge
                    upstream.append(rng.choice(setup))
                add(slug, upstream)
                prev = slug
            if prev and prev != join:
                heads.append(prev)
        if len(tasks) < n and heads:
            join = f"s{stage}_join"
            add(join, heads)
        stage += 1
    return {"name": f"bench-{n}", "tasks": tasks[:n], "edges": edges, "parameters": [], "schedule": None}


def make_events(graph: dict[str, Any], total: int, seed: int = 11) -> list[dict[str, Any]]:
    """`total` state events of one run: every task submitted, run, retried, then finished."""
    rng = random.Random(seed)
    slugs = [t["slug"] for t in graph["tasks"]]
    ts = 1_700_000_000.0
    events: list[dict[str, Any]] = [_event(None, "Running", ts, 0)]
    budget = total - 2 - 3 * len(slugs)  # flow start/end; Submitted, Running, final per task
    retries = {slug: 0 for slug in slugs}
    while budget >= 2:  # each retry adds Retrying + Running
        retries[rng.choice(slugs)] += 1
        budget -= 2
    for slug in slugs:
        ts += 0.01
        events.append(_event(slug, "Submitted", ts, 0))
        events.append(_event(slug, "Running", ts, 1))
        for attempt in range(1, retries[slug] + 1):
            events.append(_event(slug, "Retrying", ts, attempt, f"attempt {attempt} failed; retrying"))
            events.append(_event(slug, "Running", ts, attempt + 1))
        final = rng.choices(["Success", "Failed", "Cached", "TimedOut"], weights=[90, 5, 4, 1])[0]
        events.append(_event(slug, final, ts + 0.5, retries[slug] + 1))
    events.append(_event(None, "Failed", ts + 1, 0, "some tasks failed"))
    return events[: total + (budget > 0)]


def _event(task: str | None, state: str, ts: float, attempt: int, message: str = "") -> dict[str, Any]:
    return {
        "kind": "state",
        "flow_run_id": "bench-run",
        "task_run_id": f"tr-{task}" if task else None,
        "task": task,
        "timestamp": ts,
        "state": state,
        "previous": None,
        "message": message,
        "attempt": attempt,
        "result_ref": None,
        "start_time": None,
    }


class _Server:
    """Serves the page and the built bundles from a temporary directory on 127.0.0.1."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="nbflow-bench-")
        root = Path(self.dir.name)
        for name in ("dag.js", "dag.css"):
            shutil.copy(STATIC / name, root / name)
        (root / "index.html").write_text(PAGE)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/index.html"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.dir.cleanup()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="cold pages per measurement (default 3)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args()
    if not (STATIC / "dag.js").is_file():
        raise SystemExit("nbflow/static/dag.js is missing: run `pip install -e .` (needs npm) first")

    graph = make_graph(1000)
    events = make_events(graph, 10_000)
    assert len(events) == 10_000
    assert all(e["kind"] == "state" for e in events)
    results: dict[str, Any] = {}
    with _Server() as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results["chromium"] = browser.version

        def cold_page():
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url)
            page.wait_for_function("window.ready === true")
            return page

        runs = []
        for _ in range(args.repeat):
            page = cold_page()
            render = page.evaluate("g => bench.render(g)", graph)
            burst = page.evaluate("e => bench.burst(e)", events)
            states = page.evaluate("bench.states()")
            page.close()
            page = cold_page()
            page.evaluate("g => bench.render(g)", graph)
            streamed = page.evaluate("e => bench.streamed(e, 100)", events)
            page.close()
            runs.append({"render": render, "burst": burst, "streamed": streamed, "states": states})
        results["runs"] = runs

        sizes = {}
        for n in (250, 2000, 4000, 10_000):
            page = cold_page()
            sizes[n] = page.evaluate("([g, m]) => bench.render(g, m)", [make_graph(n), 1_000_000])
            page.close()
        results["sizes"] = sizes

        page = cold_page()
        big = make_graph(10_000)
        big_render = page.evaluate("g => bench.render(g)", big)
        big_burst = page.evaluate("e => bench.burst(e)", make_events(big, 40_000))
        page.close()
        results["large"] = {"render": big_render, "burst": big_burst}
        browser.close()

    report(results, graph, events)
    if args.json:
        print(json.dumps(results, indent=1))


def report(results: dict[str, Any], graph: dict[str, Any], events: list[dict[str, Any]]) -> None:
    runs = results["runs"]

    def med(path: str) -> float:
        first, second = path.split(".")
        return statistics.median(r[first][second] for r in runs)

    each = ", ".join(f"{r['render']['renderMs']:.0f}" for r in runs)
    large = results["large"]
    lines = [
        f"machine: {_cpu()}, {os.cpu_count()} CPUs; Chromium {results['chromium']} headless, software rendering",
        f"graph: {len(graph['tasks'])} tasks, {len(graph['edges'])} edges; {len(events)} state events; "
        f"median of {len(runs)} cold pages",
        f"(a) first full render, 1,000 tasks:  {med('render.renderMs'):6.0f} ms (runs: {each}; target < 1000)",
        f"(b) 10,000 events, one burst:        {med('burst.totalMs'):6.0f} ms to painted "
        f"(applying {med('burst.applyMs'):.0f} ms; longest frame gap {med('burst.maxFrameGapMs'):.0f} ms; target < 1000)",
        f"    10,000 events, batches of 100:   {med('streamed.totalMs'):6.0f} ms to painted "
        f"(frame gaps: longest {med('streamed.maxFrameGapMs'):.0f} ms, 95th percentile "
        f"{med('streamed.p95FrameGapMs'):.0f} ms over {med('streamed.frames'):.0f} frames; "
        f"{med('streamed.longtasks'):.0f} long tasks, longest {med('streamed.longestTaskMs'):.0f} ms)",
        f"    node states after the burst: {json.dumps(runs[0]['states'], sort_keys=True)}",
    ]
    for n, r in results["sizes"].items():
        lines.append(f"render at {n:>5} tasks (drawn regardless of the threshold): {r['renderMs']:6.0f} ms")
    lines.append(
        f"10,000 tasks (above the threshold: summary only={large['render']['deferred']}): "
        f"ready in {large['render']['renderMs']:.0f} ms; 40,000 events {large['burst']['totalMs']:.0f} ms, "
        f"longest frame gap {large['burst']['maxFrameGapMs']:.0f} ms; "
        f"{large['burst']['summary']['done']}/{large['burst']['summary']['total']} done"
    )
    print("\n".join(lines))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
