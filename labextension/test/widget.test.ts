// @vitest-environment happy-dom
import type { AnyModel } from "@anywidget/types";
import { afterEach, describe, expect, it } from "vitest";
import { type WidgetTraits, renderWidget } from "../src/widget/index";
import { runFixture } from "./helpers";

type Handler = (...args: unknown[]) => void;

/** The part of anywidget's model the widget uses, recording what it sends. */
class FakeModel {
  sent: unknown[] = [];
  private handlers = new Map<string, Set<Handler>>();
  constructor(private traits: WidgetTraits) {}
  get<K extends keyof WidgetTraits>(key: K): WidgetTraits[K] {
    return this.traits[key];
  }
  set<K extends keyof WidgetTraits>(key: K, value: WidgetTraits[K]): void {
    this.traits[key] = value;
    this.emit(`change:${key}`);
  }
  on(name: string, cb: Handler): void {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name)?.add(cb);
  }
  off(name?: string | null, cb?: Handler | null): void {
    if (name && cb) this.handlers.get(name)?.delete(cb);
  }
  send(content: unknown): void {
    this.sent.push(content);
  }
  emit(name: string, ...args: unknown[]): void {
    for (const cb of this.handlers.get(name) ?? []) cb(...args);
  }
  listenerCount(): number {
    return [...this.handlers.values()].reduce((n, s) => n + s.size, 0);
  }
  save_changes(): void {}
  widget_manager = {} as AnyModel["widget_manager"];
}

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
  document.body.replaceChildren();
});

function mount(states: WidgetTraits["states"] = { run: null, tasks: {} }) {
  const fixture = runFixture();
  const model = new FakeModel({ graph: fixture.graph, states });
  const el = document.createElement("div");
  document.body.append(el);
  cleanup = renderWidget(model as unknown as AnyModel<WidgetTraits>, el);
  return { model, el, fixture };
}

const $ = <T extends Element = HTMLElement>(sel: string): T => {
  const found = document.querySelector<T>(sel);
  if (!found) throw new Error(`no ${sel}`);
  return found;
};
const nextFrame = (): Promise<void> => new Promise((r) => requestAnimationFrame(() => r()));

const clickNode = (slug: string): void => {
  const target = $(`g.nbflow-node[data-task="${slug}"] rect`);
  target.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true, button: 0, pointerId: 1 }));
  target.dispatchEvent(new PointerEvent("pointerup", { bubbles: true, button: 0, pointerId: 1 }));
};

describe("the anywidget front end", () => {
  it("shows the flow, a legend entry per state and the summary", async () => {
    const { fixture, model } = mount();
    expect($(".nbflow-widget .nbflow-title").textContent).toBe("Flow fixture");
    const shown = (): string[] =>
      [...document.querySelectorAll<HTMLElement>(".nbflow-legend [data-state]")].filter((e) => !e.hidden).map((e) => e.dataset.state ?? "");
    await nextFrame();
    expect(shown()).toEqual(["NotRun"]); // before a run every task is "not run": only that is listed
    model.set("states", fixture.expected);
    await nextFrame();
    const present = Object.keys(
      Object.fromEntries(Object.values(fixture.expected.tasks ?? {}).map((t) => [t.state, 1])),
    );
    expect(shown().sort()).toEqual(present.sort()); // only the states some task is in
    const summary = $(".nbflow-summary");
    expect(summary.dataset).toMatchObject({ done: "6", running: "0", failed: "2", total: "6", run: "Failed" });
    expect(summary.textContent).toContain("6 / 6 done");
    expect($('g.nbflow-node[data-task="broken"]').getAttribute("data-state")).toBe("Failed");
  });

  it("sends the toolbar's actions and enables them by run state", async () => {
    const { model, fixture } = mount();
    const run = $<HTMLButtonElement>('button[data-action="run"]');
    const cancel = $<HTMLButtonElement>('button[data-action="cancel"]');
    const rerun = $<HTMLButtonElement>('button[data-action="rerun-failed"]');
    model.set("states", { run: { flow_run_id: "r", state: "Running", started: 1 }, tasks: {} });
    await nextFrame();
    expect([run.disabled, cancel.disabled, rerun.disabled]).toEqual([true, false, true]);
    cancel.click();
    model.set("states", fixture.expected);
    await nextFrame();
    expect([run.disabled, cancel.disabled, rerun.disabled]).toEqual([false, true, false]);
    run.click();
    rerun.click();
    expect(model.sent).toEqual([{ type: "cancel" }, { type: "run" }, { type: "rerun_failed" }]);
  });

  it("opens the detail panel on click, asks the kernel and shows its answer", () => {
    const { model, fixture } = mount();
    model.set("states", fixture.expected);
    clickNode("broken");
    const panel = $(".nbflow-detail");
    expect(panel.hidden).toBe(false);
    expect(model.sent).toContainEqual({ type: "detail", slug: "broken" });
    expect($(".nbflow-detail-message").textContent).toBe("ValueError: bad row count 3");
    model.emit("msg:custom", {
      type: "detail",
      slug: "broken",
      state: "Failed",
      message: "ValueError: bad row count 3",
      logs: [{ timestamp: 1, level: "ERROR", message: "Traceback: boom" }],
      inputs: ["rows"],
      outputs: [],
    });
    expect($(".nbflow-logs").textContent).toContain("Traceback: boom");
    expect($(".nbflow-detail-inputs").textContent).toBe("rows");
    $<HTMLButtonElement>('.nbflow-detail button[data-action="run-to"]').click();
    expect(model.sent).toContainEqual({ type: "run_to", slug: "broken" });
    $<HTMLButtonElement>('button[data-action="close-detail"]').click();
    expect(panel.hidden).toBe(true);
  });

  it("shows the task's figures in the detail panel, and only base64 PNG", () => {
    const { model } = mount();
    clickNode("load");
    expect($(".nbflow-figures").hidden).toBe(true);
    model.emit("msg:custom", {
      type: "detail",
      slug: "load",
      logs: [],
      figures: ["iVBORw0KGgo=", "not base64 <script>", "iVBORw0KGgoAAAA="],
    });
    const images = [...document.querySelectorAll<HTMLImageElement>(".nbflow-figure")];
    expect($(".nbflow-figures").hidden).toBe(false);
    expect(images.map((img) => img.src)).toEqual([
      "data:image/png;base64,iVBORw0KGgo=",
      "data:image/png;base64,iVBORw0KGgoAAAA=",
    ]);
    expect($(".nbflow-figures h4").textContent).toBe("Figures (2)");
    clickNode("broken");
    expect(document.querySelectorAll(".nbflow-figure")).toHaveLength(0);
  });

  it("ignores a detail answer for a task that is no longer open", () => {
    const { model } = mount();
    clickNode("load");
    model.emit("msg:custom", { type: "detail", slug: "broken", logs: [{ timestamp: 1, level: "INFO", message: "other" }] });
    expect($(".nbflow-logs").textContent).not.toContain("other");
  });

  it("shows an error from the kernel as a notice", () => {
    const { model } = mount();
    model.emit("msg:custom", { type: "error", message: "no run handler" });
    const notice = $(".nbflow-notice");
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toBe("no run handler");
  });

  it("follows a new structure and releases every listener on cleanup", () => {
    const { model, el } = mount();
    model.set("graph", { name: "other", tasks: [{ slug: "only", name: "only" }], edges: [] });
    expect(document.querySelectorAll("g.nbflow-node")).toHaveLength(1);
    expect(model.listenerCount()).toBe(3);
    cleanup?.();
    cleanup = null;
    expect(model.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
  });

  it("paints a cancelled run's tasks as cancelled, not as success", async () => {
    const { fixture, model } = mount();
    const slugs = fixture.graph.tasks.map((t) => t.slug);
    const tasks = Object.fromEntries(slugs.map((slug, i) => [slug, { state: i === 0 ? "Success" : "Cancelled" }]));
    model.set("states", { run: { flow_run_id: "r", state: "Cancelled", started: 1, ended: 2 }, tasks } as never);
    await nextFrame();
    const done = $(".nbflow-progress-done").style.width;
    const cancelled = $(".nbflow-progress-cancelled").style.width;
    expect(parseFloat(done)).toBeCloseTo(100 / slugs.length, 1);
    expect(parseFloat(cancelled)).toBeCloseTo((100 * (slugs.length - 1)) / slugs.length, 1);
  });

  it("shows tasks a finished partial run did not touch as not run, not Pending", async () => {
    const { fixture, model } = mount();
    const [first, second] = fixture.graph.tasks.map((t) => t.slug);
    model.set("states", { run: { flow_run_id: "r", state: "Running", started: 1 }, tasks: { [first!]: { state: "Running" } } } as never);
    await nextFrame();
    expect($(`g.nbflow-node[data-task="${second}"]`).getAttribute("data-state")).toBe("Pending");
    model.set("states", { run: { flow_run_id: "r", state: "Success", started: 1, ended: 2 }, tasks: { [first!]: { state: "Success" } } } as never);
    await nextFrame();
    expect($(`g.nbflow-node[data-task="${second}"]`).getAttribute("data-state")).toBe("NotRun");
  });

  it("sizes the canvas to a small graph instead of a tall empty band", async () => {
    mount();
    await nextFrame();
    const height = parseFloat($(".nbflow-canvas-wrap").style.height);
    expect(height).toBeGreaterThanOrEqual(140);
    expect(height).toBeLessThanOrEqual(380);
  });
});
