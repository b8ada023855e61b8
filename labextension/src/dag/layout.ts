/**
 * Node positions and edge routes from dagre. Positions depend on the graph
 * structure only (fixed node size, no state in the input), which is what keeps
 * the picture still while states change.
 *
 * dagre was chosen over elkjs by measurement (benchmarks/RESULTS.md): on a
 * cold page it laid out 1,000 tasks ~3x faster and adds ~60 kB instead of ~1.6 MB.
 * reduce.ts decides what dagre is given (chains as one node, long edges drawn
 * directly), which is what keeps a 1,000-task layout under a second.
 */
import dagre from "@dagrejs/dagre";
import type { GraphModel } from "./graph";
import { findChains, routedEdges } from "./reduce";

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
  /** Not routed by dagre (see reduce.ts): drawn as a direct curve. */
  direct: boolean;
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

const RANK_GAP = 56;

export function layoutGraph(model: GraphModel, options: LayoutOptions = {}): Layout {
  const direction = options.direction ?? "LR";
  const quality = options.quality ?? "auto";
  const fast = quality === "fast" || (quality === "auto" && model.nodes.length > FAST_LAYOUT_ABOVE);
  const lr = direction === "LR";
  const step = (lr ? NODE_WIDTH : NODE_HEIGHT) + RANK_GAP;

  const routed = routedEdges(model);
  const { members, chainOf } = findChains(model, routed);
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({
    rankdir: direction,
    nodesep: 14,
    ranksep: RANK_GAP,
    edgesep: 8,
    marginx: 16,
    marginy: 16,
    ranker: fast ? "tight-tree" : "network-simplex",
  });
  g.setDefaultEdgeLabel(() => ({}));
  for (const [id, chain] of members) {
    const length = chain.length * step - RANK_GAP;
    g.setNode(id, lr ? { width: length, height: NODE_HEIGHT } : { width: NODE_WIDTH, height: length });
  }
  for (const edge of model.edges) {
    if (!routed.has(edge.id)) continue;
    const a = chainOf.get(edge.from) as string;
    const b = chainOf.get(edge.to) as string;
    if (a !== b) g.setEdge(a, b);
  }

  try {
    dagre.layout(g, fast ? { disableOptimalOrderHeuristic: true } : {});
  } catch (err) {
    // dagre recurses along paths; a very deep flow can exhaust the JS stack.
    const why = err instanceof RangeError ? "the flow is too deep for the layout library" : String(err);
    throw new LayoutError(`could not lay out ${model.nodes.length} tasks: ${why}`);
  }

  const nodes = new Map<string, NodeBox>();
  for (const [id, chain] of members) {
    const placed = g.node(id) as { x: number; y: number; width: number; height: number };
    const left = placed.x - placed.width / 2;
    const top = placed.y - placed.height / 2;
    chain.forEach((slug, i) => {
      nodes.set(slug, {
        x: lr ? left + i * step : left,
        y: lr ? top : top + i * step,
        width: NODE_WIDTH,
        height: NODE_HEIGHT,
      });
    });
  }

  const longChain = (slug: string): boolean => (members.get(chainOf.get(slug) as string)?.length ?? 1) > 1;
  const edges = model.edges.map((edge): EdgeRoute => {
    const from = nodes.get(edge.from) as NodeBox;
    const to = nodes.get(edge.to) as NodeBox;
    const base = { id: edge.id, from: edge.from, to: edge.to };
    if (!routed.has(edge.id)) return { ...base, points: directPoints(from, to, direction), direct: true };
    const a = chainOf.get(edge.from) as string;
    const b = chainOf.get(edge.to) as string;
    if (a === b) return { ...base, points: directPoints(from, to, direction), direct: false };
    const label = g.edge(a, b) as { points?: Point[] } | undefined;
    const points = (label?.points ?? []).map((p) => ({ x: p.x, y: p.y }));
    // dagre aims at a chain's centre; the edge belongs at its first or last task.
    const [exit, entry] = directPoints(from, to, direction) as [Point, Point];
    if (points.length && longChain(edge.from)) points[0] = exit;
    if (points.length && longChain(edge.to)) points[points.length - 1] = entry;
    return { ...base, points, direct: false };
  });
  const size = g.graph() as { width?: number; height?: number };
  return { key: model.key, nodes, edges, width: size.width ?? 0, height: size.height ?? 0 };
}

/** From the side of one box facing the flow to the opposite side of the other. */
function directPoints(from: NodeBox, to: NodeBox, direction: "LR" | "TB"): Point[] {
  if (direction === "LR") {
    return [
      { x: from.x + from.width, y: from.y + from.height / 2 },
      { x: to.x, y: to.y + to.height / 2 },
    ];
  }
  return [
    { x: from.x + from.width / 2, y: from.y + from.height },
    { x: to.x + to.width / 2, y: to.y },
  ];
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

/** An S-curve between two points, leaving and entering horizontally (LR) or vertically (TB). */
export function curvePath(points: readonly Point[]): string {
  const a = points[0];
  const b = points[points.length - 1];
  if (!a || !b) return "";
  const horizontal = Math.abs(b.x - a.x) >= Math.abs(b.y - a.y);
  const bend = horizontal ? (b.x - a.x) / 2 : (b.y - a.y) / 2;
  const c1 = horizontal ? `${round(a.x + bend)},${round(a.y)}` : `${round(a.x)},${round(a.y + bend)}`;
  const c2 = horizontal ? `${round(b.x - bend)},${round(b.y)}` : `${round(b.x)},${round(b.y - bend)}`;
  return `M${round(a.x)},${round(a.y)}C${c1} ${c2} ${round(b.x)},${round(b.y)}`;
}

const round = (v: number): number => Math.round(v * 10) / 10;
