/**
 * Node positions and edge routes from dagre. Positions depend on the graph
 * structure only (fixed node size, no state in the input), which is what keeps
 * the picture still while states change.
 *
 * dagre was chosen over elkjs by measurement (benchmarks/RESULTS.md): on a
 * cold page it laid out 1,000 tasks ~3x faster and adds ~60 kB instead of ~1.6 MB.
 */
import dagre from "@dagrejs/dagre";
import type { GraphModel } from "./graph";

export const NODE_WIDTH = 188;
export const NODE_HEIGHT = 46;

/**
 * Above this many nodes dagre's optimal ordering sweeps and network-simplex
 * ranking cost more than they improve what anyone can see at fit-to-view zoom.
 */
export const FAST_LAYOUT_ABOVE = 250;

export interface Point {
  x: number;
  y: number;
}

export interface NodeBox {
  /** Top-left corner, so a node's group can be translated there directly. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface EdgeRoute {
  id: string;
  from: string;
  to: string;
  points: Point[];
}

export interface Layout {
  key: string;
  nodes: Map<string, NodeBox>;
  edges: EdgeRoute[];
  width: number;
  height: number;
}

export interface LayoutOptions {
  direction?: "LR" | "TB";
  /** Force full-quality layout regardless of size (tests compare both modes). */
  quality?: "auto" | "best" | "fast";
}

export class LayoutError extends Error {
  override name = "LayoutError";
}

export function layoutGraph(model: GraphModel, options: LayoutOptions = {}): Layout {
  const direction = options.direction ?? "LR";
  const quality = options.quality ?? "auto";
  const fast = quality === "fast" || (quality === "auto" && model.nodes.length > FAST_LAYOUT_ABOVE);

  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({
    rankdir: direction,
    nodesep: 14,
    ranksep: 56,
    edgesep: 8,
    marginx: 16,
    marginy: 16,
    ranker: fast ? "tight-tree" : "network-simplex",
  });
  g.setDefaultEdgeLabel(() => ({}));
  // Insertion order is dagre's tie-break: task order keeps notebook order visible.
  for (const node of model.nodes) g.setNode(node.slug, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const edge of model.edges) g.setEdge(edge.from, edge.to);

  try {
    dagre.layout(g, fast ? { disableOptimalOrderHeuristic: true } : {});
  } catch (err) {
    // dagre recurses along paths; a very deep flow can exhaust the JS stack.
    const why = err instanceof RangeError ? "the flow is too deep for the layout library" : String(err);
    throw new LayoutError(`could not lay out ${model.nodes.length} tasks: ${why}`);
  }

  const nodes = new Map<string, NodeBox>();
  for (const node of model.nodes) {
    const placed = g.node(node.slug) as { x: number; y: number; width: number; height: number };
    nodes.set(node.slug, {
      x: placed.x - placed.width / 2,
      y: placed.y - placed.height / 2,
      width: placed.width,
      height: placed.height,
    });
  }
  const edges = model.edges.map((edge) => {
    const label = g.edge(edge.from, edge.to) as { points?: Point[] } | undefined;
    return { id: edge.id, from: edge.from, to: edge.to, points: (label?.points ?? []).map((p) => ({ x: p.x, y: p.y })) };
  });
  const size = g.graph() as { width?: number; height?: number };
  return { key: model.key, nodes, edges, width: size.width ?? 0, height: size.height ?? 0 };
}

/** A smooth SVG path through dagre's control points (quadratic joins at the bends). */
export function edgePath(points: readonly Point[]): string {
  const first = points[0];
  if (!first) return "";
  let d = `M${round(first.x)},${round(first.y)}`;
  if (points.length === 2) {
    const last = points[1] as Point;
    return `${d}L${round(last.x)},${round(last.y)}`;
  }
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i] as Point;
    const next = points[i + 1] as Point;
    const mid = i === points.length - 2 ? next : { x: (p.x + next.x) / 2, y: (p.y + next.y) / 2 };
    d += `Q${round(p.x)},${round(p.y)} ${round(mid.x)},${round(mid.y)}`;
  }
  return d;
}

const round = (v: number): number => Math.round(v * 10) / 10;
