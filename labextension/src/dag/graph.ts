/**
 * The flow structure turned into what the renderer needs: nodes in task
 * order, one drawn edge per (upstream, downstream) pair with the names that
 * travel along it, and a structural key so callers can tell a new layout is
 * needed (a states-only update must never move a node).
 */
import type { FlowGraph, GraphTask } from "./types";

export interface GraphNode {
  slug: string;
  name: string;
  kind: string;
  order: number;
}

export interface MergedEdge {
  id: string;
  from: string;
  to: string;
  /** Names passed along the edge; empty when the edge only orders the tasks. */
  keys: string[];
}

export interface GraphModel {
  name: string;
  nodes: GraphNode[];
  edges: MergedEdge[];
  bySlug: Map<string, GraphNode>;
  /** Same string <=> same nodes, labels and edges: the layout can be reused. */
  key: string;
}

const edgeId = (from: string, to: string): string => `${from}\u0000${to}`;

export function buildGraphModel(graph: FlowGraph | null | undefined): GraphModel {
  const tasks: GraphTask[] = graph?.tasks ?? [];
  const nodes: GraphNode[] = tasks.map((t, i) => ({
    slug: t.slug,
    name: t.name || t.slug,
    kind: t.kind ?? "task",
    order: typeof t.order === "number" ? t.order : i,
  }));
  nodes.sort((a, b) => a.order - b.order);
  const bySlug = new Map(nodes.map((n) => [n.slug, n]));

  const merged = new Map<string, MergedEdge>();
  const addEdge = (from: string, to: string, key: string | null): void => {
    // An edge to a task the structure does not list cannot be placed; drop it.
    if (!bySlug.has(from) || !bySlug.has(to) || from === to) return;
    const id = edgeId(from, to);
    let edge = merged.get(id);
    if (!edge) {
      edge = { id, from, to, keys: [] };
      merged.set(id, edge);
    }
    if (key !== null && !edge.keys.includes(key)) edge.keys.push(key);
  };
  for (const e of graph?.edges ?? []) addEdge(e.upstream, e.downstream, e.key);
  // `upstream` may name ordering-only dependencies the edge list also has; merging dedupes.
  for (const t of tasks) for (const up of t.upstream ?? []) addEdge(up, t.slug, null);
  const edges = [...merged.values()];

  const key = JSON.stringify([
    nodes.map((n) => [n.slug, n.name, n.kind]),
    edges.map((e) => [e.from, e.to, e.keys.length === 0]),
  ]);
  return { name: graph?.name ?? "", nodes, edges, bySlug, key };
}

/** Names a task reads (its `uses`, else the keys of its incoming edges). */
export function taskInputs(graph: FlowGraph | null | undefined, slug: string): string[] {
  const task = graph?.tasks.find((t) => t.slug === slug);
  if (task?.uses) return [...task.uses];
  return unique((graph?.edges ?? []).filter((e) => e.downstream === slug).map((e) => e.key));
}

/** Names a task produces (its `defines`, else the keys of its outgoing edges). */
export function taskOutputs(graph: FlowGraph | null | undefined, slug: string): string[] {
  const task = graph?.tasks.find((t) => t.slug === slug);
  if (task?.defines) return [...task.defines];
  return unique((graph?.edges ?? []).filter((e) => e.upstream === slug).map((e) => e.key));
}

const unique = (keys: (string | null)[]): string[] => [
  ...new Set(keys.filter((k): k is string => k !== null)),
];
