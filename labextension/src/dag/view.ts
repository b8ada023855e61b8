/**
 * `createDagView`: the one DAG component the widget, the JupyterLab plugin and
 * the web UI share. Feed it a structure once and states as often as you like
 * (a snapshot, or engine events); it redraws only nodes that changed, at most
 * once per animation frame, and lays out again only when the structure changes.
 */
import { type GraphModel, buildGraphModel } from "./graph";
import { type Layout, LayoutError, type LayoutOptions, layoutGraph } from "./layout";
import { PanZoom, type Transform } from "./panzoom";
import { GraphRenderer, type NodeDisplay } from "./render";
import { applyEvents, emptySnapshot, normalizeSnapshot, sameTaskState } from "./snapshot";
import { isActive, stateLabel } from "./states";
import { type ProgressSummary, childSummary, formatDuration, summarize, taskDuration } from "./summary";
import { htmlEl, svgEl } from "./svg";
import type { CompactSnapshot, DisplayState, EngineEvent, FlowGraph, RunSnapshot } from "./types";

/**
 * Above this many tasks the view does not lay out by itself: dagre needs
 * about 1 s per 1,000 tasks on a cold page and would freeze it for many
 * seconds on a 10,000-task flow (and can run out of stack on very deep ones).
 * The view shows a button instead; the summary keeps working.
 */
export const LARGE_FLOW_TASKS = 2000;

/** Zoom below which node labels are hidden (12 px text would be under 5 px). */
const FAR_SCALE = 0.4;
/** Up to this many drawn nodes, fit-to-view keeps labels readable and lets the user pan. */
const READABLE_FIT_NODES = 80;
const READABLE_FIT_SCALE = 0.6;

export interface DagViewOptions extends LayoutOptions {
  /** See LARGE_FLOW_TASKS; Infinity always draws. */
  maxNodes?: number;
  /** A node was clicked (or Enter was pressed on it); null when the background was. */
  onSelect?: (slug: string | null) => void;
  /** After each redraw, with the figures the summary shows. */
  onUpdate?: (summary: ProgressSummary, snapshot: RunSnapshot) => void;
  onError?: (message: string) => void;
  onTransform?: (t: Transform) => void;
  /** After each layout, with its size at scale 1 (a host may size its canvas to it). */
  onLayout?: (width: number, height: number) => void;
  /** Epoch seconds; injectable so tests control the clock. */
  now?: () => number;
}

export interface DagView {
  readonly element: HTMLElement;
  setGraph(graph: FlowGraph | null): void;
  setStates(snapshot: CompactSnapshot | RunSnapshot | null): void;
  applyEvents(events: readonly EngineEvent[]): void;
  select(slug: string | null): void;
  /** Pan so the selected node is in view (after the canvas was resized). */
  revealSelected(): void;
  /** Fit the whole graph in view. */
  fit(): void;
  /** Lay out and draw a flow larger than `maxNodes` after all. */
  drawAnyway(): void;
  /** True while a large flow is shown as a summary only. */
  deferred(): boolean;
  /** Draw pending changes now instead of on the next frame. */
  flush(): void;
  snapshot(): RunSnapshot;
  summary(): ProgressSummary;
  graph(): FlowGraph | null;
  nodeCount(): number;
  destroy(): void;
}

// Re-rendering the same structure (a notebook output shown twice, a page
// revisit) should not pay for layout again.
const layoutCache = new Map<string, Layout>();
const LAYOUT_CACHE_SIZE = 4;

function cachedLayout(model: GraphModel, options: LayoutOptions): Layout {
  const cacheKey = `${options.direction ?? "LR"}|${options.quality ?? "auto"}|${model.key}`;
  const hit = layoutCache.get(cacheKey);
  if (hit) return hit;
  const layout = layoutGraph(model, options);
  layoutCache.set(cacheKey, layout);
  if (layoutCache.size > LAYOUT_CACHE_SIZE) layoutCache.delete(layoutCache.keys().next().value as string);
  return layout;
}

/** Before any run, while one goes, after it ended: nodes without an entry draw differently in each. */
const runPhase = (s: RunSnapshot): string => (s.run === null ? "none" : s.run.ended === null ? "running" : "ended");

export function createDagView(container: HTMLElement, options: DagViewOptions = {}): DagView {
  const doc = container.ownerDocument;
  const win = doc.defaultView;
  const now = options.now ?? (() => Date.now() / 1000);

  const element = htmlEl(doc, "div", "nbflow-dag");
  const svg = svgEl(doc, "svg", { class: "nbflow-canvas", width: "100%", height: "100%" });
  const defs = svgEl(doc, "defs");
  const viewport = svgEl(doc, "g", { class: "nbflow-viewport" });
  const renderer = new GraphRenderer(doc, defs);
  viewport.append(renderer.root);
  svg.append(defs, viewport);
  const fitButton = htmlEl(doc, "button", "nbflow-fit", "Fit");
  fitButton.type = "button";
  fitButton.dataset.action = "fit";
  fitButton.title = "Fit the whole graph in view";
  const message = htmlEl(doc, "div", "nbflow-dag-message");
  const messageText = htmlEl(doc, "p", "nbflow-dag-message-text");
  const drawButton = htmlEl(doc, "button", "nbflow-draw", "Draw the graph anyway");
  drawButton.type = "button";
  drawButton.dataset.action = "draw-graph";
  message.append(messageText, drawButton);
  message.hidden = true;
  element.append(svg, fitButton, message);
  container.append(element);

  let graph: FlowGraph | null = null;
  let model: GraphModel = buildGraphModel(null);
  let slugs: string[] = [];
  let layout: Layout | null = null;
  let snapshot: RunSnapshot = emptySnapshot();
  let selected: string | null = null;
  const dirty = new Set<string>();
  let frame: number | null = null;
  let destroyed = false;
  let forceDraw = false;
  let isDeferred = false;
  const maxNodes = options.maxNodes ?? LARGE_FLOW_TASKS;

  const select = (slug: string | null): void => {
    selected = slug !== null && model.bySlug.has(slug) ? slug : null;
    renderer.setSelected(selected);
  };
  /** Keep the selected node in view (a detail panel opening beside the canvas narrows it). */
  const revealSelected = (): void => {
    const box = selected !== null ? layout?.nodes.get(selected) : undefined;
    if (box) panzoom.reveal(box);
  };

  // Level of detail: below ~5 px text is unreadable but still costs paint time on every frame.
  let far: boolean | null = null;
  const onTransform = (t: Transform): void => {
    const isFar = t.k < FAR_SCALE;
    if (isFar !== far) {
      far = isFar;
      svg.classList.toggle("nbflow-far", isFar);
    }
    options.onTransform?.(t);
  };

  const panzoom = new PanZoom(svg, viewport, {
    onTransform,
    onResize: () => revealSelected(),
    onClick: (target) => {
      const node = target.closest("g.nbflow-node");
      const slug = node?.getAttribute("data-task") ?? null;
      select(slug);
      options.onSelect?.(selected);
    },
  });
  const onKey = (ev: KeyboardEvent): void => {
    if (ev.key !== "Enter" && ev.key !== " ") return;
    const node = (ev.target as Element | null)?.closest?.("g.nbflow-node");
    if (!node) return;
    ev.preventDefault();
    select(node.getAttribute("data-task"));
    options.onSelect?.(selected);
  };
  svg.addEventListener("keydown", onKey);
  const onFit = (): void => panzoom.fit(true);
  fitButton.addEventListener("click", onFit);

  const display = (slug: string, at: number): NodeDisplay => {
    const entry = snapshot.tasks[slug];
    // Without an entry: waiting while the run goes, "not run" before a run or when the
    // run ended without it (a partial run such as "run up to here").
    const running = snapshot.run !== null && snapshot.run.ended === null;
    const state: DisplayState = entry?.state ?? (running ? "Pending" : "NotRun");
    const parts = [stateLabel(state)];
    const duration = formatDuration(taskDuration(entry, at));
    if (duration) parts.push(duration);
    if (entry && entry.attempt > 1) parts.push(`attempt ${entry.attempt}`);
    if (entry?.children) parts.push(childSummary(entry.children));
    return { state, status: parts.join(" \u00b7 ") };
  };

  const showMessage = (text: string | null, offerDraw = false): void => {
    fitButton.hidden = layout === null;
    message.hidden = text === null;
    messageText.textContent = text ?? "";
    drawButton.hidden = !offerDraw;
  };

  const render = (): void => {
    frame = null;
    if (destroyed) return;
    const at = now();
    if (layout) for (const slug of dirty) renderer.update(slug, display(slug, at));
    dirty.clear();
    options.onUpdate?.(summarize(snapshot, slugs, at), snapshot);
  };

  const schedule = (): void => {
    if (frame !== null || destroyed) return;
    frame = win?.requestAnimationFrame ? win.requestAnimationFrame(render) : (setTimeout(render, 16) as unknown as number);
  };

  const markAll = (): void => {
    for (const slug of slugs) dirty.add(slug);
  };

  // Durations of running tasks and the elapsed time move without events.
  const ticker = setInterval(() => {
    let active = false;
    for (const slug of slugs) {
      if (isActive(snapshot.tasks[slug]?.state ?? "Pending")) {
        dirty.add(slug);
        active = true;
      }
    }
    const run = snapshot.run;
    if (active || (run !== null && run.started !== null && run.ended === null)) schedule();
  }, 1000);

  const draw = (): void => {
    layout = null;
    isDeferred = model.nodes.length > maxNodes && !forceDraw;
    if (isDeferred) {
      renderer.clear();
      const n = model.nodes.length.toLocaleString("en-US");
      showMessage(`This flow has ${n} tasks: the graph is not drawn above ${maxNodes.toLocaleString("en-US")} tasks because laying it out would freeze the page for several seconds.`, true);
      schedule();
      return;
    }
    try {
      layout = cachedLayout(model, options);
    } catch (err) {
      renderer.clear();
      const text = err instanceof LayoutError ? err.message : `layout failed: ${String(err)}`;
      showMessage(text);
      options.onError?.(text);
      return;
    }
    showMessage(model.nodes.length ? null : "This flow has no tasks yet.");
    // Fit first: measuring the canvas forces a layout pass, which must not see
    // a thousand labels that the far-zoom level of detail is about to hide.
    panzoom.setContentSize(layout.width, layout.height);
    panzoom.minFitScale = layout.nodes.size <= READABLE_FIT_NODES ? READABLE_FIT_SCALE : 0;
    options.onLayout?.(layout.width, layout.height);
    if (!panzoom.userMoved) panzoom.fit();
    const at = now();
    renderer.draw(model, layout, (slug) => display(slug, at));
    if (selected !== null && !model.bySlug.has(selected)) select(null);
    dirty.clear();
    schedule();
  };
  const onDraw = (): void => view.drawAnyway();
  drawButton.addEventListener("click", onDraw);

  const view: DagView = {
    element,
    setGraph(next) {
      graph = next;
      const nextModel = buildGraphModel(next);
      const structural = nextModel.key !== model.key || (layout === null && !isDeferred);
      model = nextModel;
      slugs = model.nodes.map((n) => n.slug);
      if (structural) draw();
    },
    setStates(raw) {
      const next = normalizeSnapshot(raw as CompactSnapshot | null);
      for (const slug of slugs) {
        if (!sameTaskState(snapshot.tasks[slug], next.tasks[slug])) dirty.add(slug);
      }
      // Nodes without an entry show Pending or "not run" depending on the run.
      if (runPhase(snapshot) !== runPhase(next)) markAll();
      snapshot = next;
      schedule();
    },
    applyEvents(events) {
      const phase = runPhase(snapshot);
      const result = applyEvents(snapshot, events, slugs);
      if (result.reset || phase !== runPhase(snapshot)) markAll();
      for (const slug of result.changed) dirty.add(slug);
      schedule();
    },
    select(slug) {
      select(slug);
      revealSelected();
    },
    revealSelected,
    fit: () => panzoom.fit(true),
    drawAnyway() {
      forceDraw = true;
      if (isDeferred) draw();
    },
    deferred: () => isDeferred,
    flush() {
      if (frame !== null) {
        if (win?.cancelAnimationFrame) win.cancelAnimationFrame(frame);
        clearTimeout(frame);
      }
      render();
    },
    snapshot: () => snapshot,
    summary: () => summarize(snapshot, slugs, now()),
    graph: () => graph,
    nodeCount: () => slugs.length,
    destroy() {
      destroyed = true;
      clearInterval(ticker);
      if (frame !== null && win?.cancelAnimationFrame) win.cancelAnimationFrame(frame);
      panzoom.destroy();
      svg.removeEventListener("keydown", onKey);
      fitButton.removeEventListener("click", onFit);
      drawButton.removeEventListener("click", onDraw);
      element.remove();
    },
  };
  return view;
}
