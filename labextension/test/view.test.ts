// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from "vitest";
import { type DagView, createDagView } from "../src/dag/view";
import { pipelineGraph, runFixture, stateEvent } from "./helpers";

let view: DagView | null = null;
afterEach(() => {
  view?.destroy();
  view = null;
  document.body.replaceChildren();
});

const mount = (options: Parameters<typeof createDagView>[1] = {}): DagView => {
  const host = document.createElement("div");
  document.body.append(host);
  view = createDagView(host, { now: () => 2000, ...options });
  return view;
};

const node = (slug: string): Element | null => document.querySelector(`g.nbflow-node[data-task="${slug}"]`);
const transforms = (): string[] =>
  [...document.querySelectorAll("g.nbflow-node")].map((g) => g.getAttribute("transform") ?? "");

const click = (target: Element): void => {
  target.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true, button: 0, pointerId: 1, clientX: 5, clientY: 5 }));
  target.dispatchEvent(new PointerEvent("pointerup", { bubbles: true, button: 0, pointerId: 1, clientX: 5, clientY: 5 }));
};

describe("createDagView", () => {
  it("draws a node per task with its slug and state, and an edge per dependency", () => {
    const v = mount();
    const fixture = runFixture();
    v.setGraph(fixture.graph);
    expect(document.querySelectorAll("g.nbflow-node")).toHaveLength(6);
    expect(node("broken")?.getAttribute("data-state")).toBe("NotRun");
    expect(document.querySelectorAll("path.nbflow-edge").length).toBeGreaterThanOrEqual(5);
    expect(node("load")?.textContent).toContain("load");
  });

  it("shows states, durations and attempts from a snapshot without moving any node", () => {
    const v = mount();
    const fixture = runFixture();
    v.setGraph(fixture.graph);
    const before = transforms();
    v.setStates(fixture.expected);
    v.flush();
    expect(node("broken")?.getAttribute("data-state")).toBe("Failed");
    expect(node("report")?.getAttribute("data-state")).toBe("TriggerFailed");
    expect(node("flaky")?.querySelector(".nbflow-node-status")?.textContent).toMatch(/^Success · [\d.]+s · attempt 2$/);
    expect(transforms()).toEqual(before);
  });

  it("applies engine events: a new run resets nodes to Pending, then tasks move on", () => {
    const v = mount();
    v.setGraph(pipelineGraph(12));
    v.applyEvents([stateEvent(null, "Running"), stateEvent("s0_b0_t0", "Running", { timestamp: 1990, attempt: 1 })]);
    v.flush();
    expect(node("s0_b0_t0")?.getAttribute("data-state")).toBe("Running");
    expect(node("s0_b0_t0")?.querySelector(".nbflow-node-status")?.textContent).toBe("Running · 10s");
    expect(node("s0_b0_t1")?.getAttribute("data-state")).toBe("Pending");
    expect(v.summary()).toMatchObject({ total: 12, running: 1, done: 0 });
  });

  it("reports clicks on a node, and on the background as a deselect", () => {
    const onSelect = vi.fn();
    const v = mount({ onSelect });
    v.setGraph(runFixture().graph);
    const target = node("load")?.querySelector("rect") as Element;
    click(target);
    expect(onSelect).toHaveBeenLastCalledWith("load");
    expect(node("load")?.classList.contains("nbflow-selected")).toBe(true);
    click(document.querySelector("svg.nbflow-canvas") as Element);
    expect(onSelect).toHaveBeenLastCalledWith(null);
    expect(node("load")?.classList.contains("nbflow-selected")).toBe(false);
  });

  it("pans on drag instead of selecting", () => {
    const onSelect = vi.fn();
    const v = mount({ onSelect });
    v.setGraph(runFixture().graph);
    const svg = document.querySelector("svg.nbflow-canvas") as Element;
    const viewport = document.querySelector("g.nbflow-viewport") as Element;
    const target = node("load") as Element;
    target.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true, button: 0, pointerId: 2, clientX: 0, clientY: 0 }));
    svg.dispatchEvent(new PointerEvent("pointermove", { bubbles: true, pointerId: 2, clientX: 40, clientY: 30 }));
    svg.dispatchEvent(new PointerEvent("pointerup", { bubbles: true, pointerId: 2, clientX: 40, clientY: 30 }));
    expect(onSelect).not.toHaveBeenCalled();
    expect(viewport.getAttribute("transform")).toMatch(/^translate\(40\.00,30\.00\)/);
  });

  it("zooms on the wheel around the pointer", () => {
    const v = mount();
    v.setGraph(runFixture().graph);
    const svg = document.querySelector("svg.nbflow-canvas") as Element;
    const wheel = new WheelEvent("wheel", { deltaY: -200, clientX: 0, clientY: 0, cancelable: true });
    svg.dispatchEvent(wheel);
    expect(wheel.defaultPrevented).toBe(true);
    const scale = /scale\(([\d.]+)\)/.exec(document.querySelector("g.nbflow-viewport")?.getAttribute("transform") ?? "");
    expect(Number(scale?.[1])).toBeGreaterThan(1);
  });

  it("does not lay out a flow above the threshold until asked", () => {
    const v = mount({ maxNodes: 50 });
    v.setGraph(pipelineGraph(80));
    expect(v.deferred()).toBe(true);
    expect(document.querySelectorAll("g.nbflow-node")).toHaveLength(0);
    v.applyEvents([stateEvent(null, "Running"), stateEvent("s0_b0_t0", "Success")]);
    expect(v.summary()).toMatchObject({ total: 80, done: 1 });
    (document.querySelector('button[data-action="draw-graph"]') as HTMLButtonElement).click();
    expect(v.deferred()).toBe(false);
    expect(document.querySelectorAll("g.nbflow-node")).toHaveLength(80);
    expect(node("s0_b0_t0")?.getAttribute("data-state")).toBe("Success");
  });

  it("keeps the drawing when the same structure arrives again", () => {
    const v = mount();
    const graph = runFixture().graph;
    v.setGraph(graph);
    const first = node("load");
    v.setGraph(structuredClone(graph));
    expect(node("load")).toBe(first);
  });

  it("calls onUpdate once per frame with the summary", () => {
    const onUpdate = vi.fn();
    const v = mount({ onUpdate });
    v.setGraph(pipelineGraph(5));
    onUpdate.mockClear();
    for (let i = 0; i < 50; i++) v.applyEvents([stateEvent("s0_b0_t0", "Running")]);
    v.flush();
    expect(onUpdate).toHaveBeenCalledTimes(1);
  });
});
