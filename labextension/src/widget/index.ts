/**
 * The anywidget front end of `nbflow.kernel.widget.FlowWidget`: toolbar,
 * progress summary, legend, the shared DAG view and a detail panel. Works in
 * any anywidget host (JupyterLab 4, Notebook 7, VS Code).
 */
import type { AnyModel, RenderProps } from "@anywidget/types";
import "../dag/dag.css";
import { Legend } from "../dag/legend";
import { ProgressView } from "../dag/progress";
import { htmlEl } from "../dag/svg";
import type { CompactSnapshot, FlowGraph, TaskRunState } from "../dag/types";
import { createDagView } from "../dag/view";
import { DetailPanel } from "./detail";
import { Notice } from "./notice";
import { type OutgoingMessage, parseIncoming } from "./protocol";
import { Toolbar } from "./toolbar";
import "./widget.css";

export interface WidgetTraits {
  graph: FlowGraph | Record<string, never>;
  states: CompactSnapshot;
}

const MIN_CANVAS_HEIGHT = 140;
const MAX_CANVAS_HEIGHT = 380;

const asGraph = (raw: unknown): FlowGraph | null =>
  raw && typeof raw === "object" && Array.isArray((raw as FlowGraph).tasks) ? (raw as FlowGraph) : null;

export function renderWidget(model: AnyModel<WidgetTraits>, el: HTMLElement): () => void {
  const doc = el.ownerDocument;
  const send = (msg: OutgoingMessage): void => model.send(msg);

  const root = htmlEl(doc, "div", "nbflow-widget");
  const header = htmlEl(doc, "div", "nbflow-header");
  const title = htmlEl(doc, "span", "nbflow-title");
  const toolbar = new Toolbar(doc, (action) => send({ type: action }));
  header.append(title, toolbar.el);
  const progress = new ProgressView(doc);
  const legend = new Legend(doc);
  const notice = new Notice(doc);
  const body = htmlEl(doc, "div", "nbflow-body");
  const canvas = htmlEl(doc, "div", "nbflow-canvas-wrap");
  let lastDetailEntry: TaskRunState | undefined;
  // The canvas takes the graph's height (no tall empty band under a small graph) until
  // the user drags its edge: then their height stays.
  let autoHeight = "";
  const fitHeight = (graphHeight: number): void => {
    if (canvas.style.height && canvas.style.height !== autoHeight) return;
    autoHeight = `${Math.round(Math.min(MAX_CANVAS_HEIGHT, Math.max(MIN_CANVAS_HEIGHT, graphHeight + 56)))}px`;
    canvas.style.height = autoHeight;
  };

  const requestDetail = (slug: string): void => send({ type: "detail", slug });
  const detail = new DetailPanel(doc, {
    onRunTo: (slug) => send({ type: "run_to", slug }),
    onClose: () => {
      detail.close();
      view.select(null);
    },
  });
  body.append(canvas, detail.el);
  root.append(header, progress.el, legend.el, notice.el, body);
  el.append(root);

  const view = createDagView(canvas, {
    onSelect: (slug) => {
      if (slug === null) {
        detail.close();
        return;
      }
      const node = view.graph()?.tasks.find((t) => t.slug === slug);
      detail.open(slug, node?.name ?? slug);
      lastDetailEntry = view.snapshot().tasks[slug];
      detail.showLocal(lastDetailEntry, view.snapshot().run ? "Pending" : "NotRun", Date.now() / 1000);
      requestDetail(slug);
    },
    onUpdate: (summary, snapshot) => {
      progress.update(summary);
      legend.setCounts(summary.counts, summary.total - Object.values(summary.counts).reduce((a, b) => a + (b ?? 0), 0));
      toolbar.update(summary);
      const open = detail.current;
      if (open !== null) {
        const entry = snapshot.tasks[open];
        detail.showLocal(entry, snapshot.run ? "Pending" : "NotRun", Date.now() / 1000);
        // New state, new logs: ask the kernel again (states sync at most ~5/s).
        if (entry !== lastDetailEntry) {
          lastDetailEntry = entry;
          requestDetail(open);
        }
      }
    },
    onError: (message) => notice.show(message),
    onLayout: (_width, height) => fitHeight(height),
  });

  const onGraph = (): void => {
    const graph = asGraph(model.get("graph"));
    title.textContent = graph?.name ? `Flow ${graph.name}` : "Flow";
    view.setGraph(graph);
    if (detail.current !== null && !graph?.tasks.some((t) => t.slug === detail.current)) detail.close();
  };
  const onStates = (): void => view.setStates(model.get("states") ?? null);
  const onMessage = (raw: unknown): void => {
    const msg = parseIncoming(raw);
    if (msg?.type === "detail") detail.fill(msg);
    else if (msg?.type === "error") notice.show(msg.message);
  };

  onGraph();
  onStates();
  model.on("change:graph", onGraph);
  model.on("change:states", onStates);
  model.on("msg:custom", onMessage);

  return () => {
    model.off("change:graph", onGraph);
    model.off("change:states", onStates);
    model.off("msg:custom", onMessage);
    notice.hide();
    view.destroy();
    root.remove();
  };
}

export default {
  render({ model, el }: RenderProps<WidgetTraits>) {
    return renderWidget(model, el);
  },
};
