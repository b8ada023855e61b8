/**
 * Draws a laid-out graph into SVG and updates single nodes in place. A state
 * change touches one attribute and one text node; nothing is re-created, so
 * 10,000 events cost little more than the final frame.
 */
import type { GraphModel } from "./graph";
import { type Layout, NODE_HEIGHT, NODE_WIDTH, curvePath, edgePath } from "./layout";
import { stateLabel } from "./states";
import { svgEl, truncate } from "./svg";
import type { DisplayState } from "./types";

export interface NodeDisplay {
  state: DisplayState;
  /** Second line: state, duration, attempt. */
  status: string;
}

interface NodeParts {
  name: string;
  group: SVGGElement;
  status: Text;
  state: DisplayState;
  statusText: string;
}

const NAME_CHARS = 26;
let markerSeq = 0;

export class GraphRenderer {
  readonly root: SVGGElement;
  private readonly edgeLayer: SVGGElement;
  private readonly nodeLayer: SVGGElement;
  private readonly markerId: string;
  private nodes = new Map<string, NodeParts>();
  private edgesBySlug = new Map<string, SVGPathElement[]>();
  private selected: string | null = null;

  constructor(private readonly doc: Document, defs: SVGDefsElement) {
    // Ids are document-global: two widgets on one page need distinct markers.
    this.markerId = `nbflow-arrow-${++markerSeq}`;
    const marker = svgEl(doc, "marker", {
      id: this.markerId,
      viewBox: "0 0 10 10",
      refX: 9,
      refY: 5,
      // In user space the arrow keeps its size when a selected edge is drawn thicker.
      markerUnits: "userSpaceOnUse",
      markerWidth: 9,
      markerHeight: 9,
      orient: "auto-start-reverse",
    });
    marker.append(svgEl(doc, "path", { d: "M0,0L10,5L0,10z", class: "nbflow-arrow" }));
    defs.append(marker);
    this.root = svgEl(doc, "g", { class: "nbflow-graph" });
    this.edgeLayer = svgEl(doc, "g", { class: "nbflow-edges" });
    this.nodeLayer = svgEl(doc, "g", { class: "nbflow-nodes" });
    this.root.append(this.edgeLayer, this.nodeLayer);
  }

  draw(model: GraphModel, layout: Layout, initial: (slug: string) => NodeDisplay): void {
    this.nodes = new Map();
    this.edgesBySlug = new Map();
    this.edgeLayer.replaceChildren(this.drawEdges(model, layout));
    this.nodeLayer.replaceChildren(this.drawNodes(model, layout, initial));
    if (this.selected !== null) this.setSelected(this.selected);
  }

  clear(): void {
    this.nodes = new Map();
    this.edgesBySlug = new Map();
    this.edgeLayer.replaceChildren();
    this.nodeLayer.replaceChildren();
  }

  update(slug: string, display: NodeDisplay): void {
    const parts = this.nodes.get(slug);
    if (!parts) return;
    if (parts.state !== display.state) {
      parts.group.setAttribute("data-state", display.state);
      parts.group.setAttribute("aria-label", `${parts.name}: ${stateLabel(display.state)}`);
      parts.state = display.state;
    }
    if (parts.statusText !== display.status) {
      parts.status.data = display.status;
      parts.statusText = display.status;
    }
  }

  has(slug: string): boolean {
    return this.nodes.has(slug);
  }

  nodeElement(slug: string): SVGGElement | null {
    return this.nodes.get(slug)?.group ?? null;
  }

  setSelected(slug: string | null): void {
    const previous = this.selected;
    if (previous !== null) {
      this.nodes.get(previous)?.group.classList.remove("nbflow-selected");
      for (const e of this.edgesBySlug.get(previous) ?? []) e.classList.remove("nbflow-edge-selected");
    }
    this.selected = slug;
    if (slug === null) return;
    this.nodes.get(slug)?.group.classList.add("nbflow-selected");
    for (const e of this.edgesBySlug.get(slug) ?? []) e.classList.add("nbflow-edge-selected");
  }

  private drawEdges(model: GraphModel, layout: Layout): DocumentFragment {
    const frag = this.doc.createDocumentFragment();
    const keysById = new Map(model.edges.map((e) => [e.id, e.keys]));
    const marker = `url(#${this.markerId})`;
    for (const route of layout.edges) {
      const keys = keysById.get(route.id) ?? [];
      const classes = ["nbflow-edge"];
      if (!keys.length) classes.push("nbflow-edge-order");
      if (route.direct) classes.push("nbflow-edge-direct");
      const path = svgEl(this.doc, "path", {
        class: classes.join(" "),
        d: route.direct ? curvePath(route.points) : edgePath(route.points),
        "marker-end": marker,
        "data-from": route.from,
        "data-to": route.to,
      });
      const title = svgEl(this.doc, "title");
      title.textContent = keys.length ? `${route.from} \u2192 ${route.to}: ${keys.join(", ")}` : `${route.from} \u2192 ${route.to} (order only)`;
      path.append(title);
      frag.append(path);
      for (const slug of [route.from, route.to]) {
        const list = this.edgesBySlug.get(slug);
        if (list) list.push(path);
        else this.edgesBySlug.set(slug, [path]);
      }
    }
    return frag;
  }

  private drawNodes(model: GraphModel, layout: Layout, initial: (slug: string) => NodeDisplay): DocumentFragment {
    const frag = this.doc.createDocumentFragment();
    const template = this.nodeTemplate();
    for (const node of model.nodes) {
      const box = layout.nodes.get(node.slug);
      if (!box) continue;
      const display = initial(node.slug);
      const group = template.cloneNode(true) as SVGGElement;
      group.setAttribute("data-task", node.slug);
      group.setAttribute("data-state", display.state);
      group.setAttribute("data-kind", node.kind);
      group.setAttribute("transform", `translate(${box.x.toFixed(1)},${box.y.toFixed(1)})`);
      group.setAttribute("aria-label", `${node.name}: ${stateLabel(display.state)}`);
      const [title, , , name, statusEl] = Array.from(group.childNodes) as SVGElement[];
      (title as SVGTitleElement).textContent = node.name === node.slug ? node.name : `${node.name} (${node.slug})`;
      (name as SVGTextElement).textContent = truncate(node.name, NAME_CHARS);
      const status = this.doc.createTextNode(display.status);
      (statusEl as SVGTextElement).append(status);
      this.nodes.set(node.slug, { name: node.name, group, status, state: display.state, statusText: display.status });
      frag.append(group);
    }
    return frag;
  }

  /** One prototype cloned per node: far cheaper than five createElementNS calls each. */
  private nodeTemplate(): SVGGElement {
    const doc = this.doc;
    const g = svgEl(doc, "g", { class: "nbflow-node", tabindex: 0, role: "button" });
    g.append(
      svgEl(doc, "title"),
      svgEl(doc, "rect", { class: "nbflow-node-box", width: NODE_WIDTH, height: NODE_HEIGHT, rx: 6 }),
      svgEl(doc, "rect", { class: "nbflow-node-bar", width: 5, height: NODE_HEIGHT, rx: 2 }),
      svgEl(doc, "text", { class: "nbflow-node-name", x: 13, y: 19 }),
      svgEl(doc, "text", { class: "nbflow-node-status", x: 13, y: 36 }),
    );
    return g;
  }
}
