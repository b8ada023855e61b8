/**
 * What dagre is given. dagre's cost grows with the number of ranks and with
 * the dummy node it adds on every rank an edge crosses; on a cold page a
 * 1,000-task pipeline took several seconds. Two reductions keep it under a
 * second without changing what dagre decides:
 *
 * - long edges beyond a budget are not routed (drawn as direct curves);
 * - a chain (each link the only way out of one task and the only way into the
 *   next) is given to dagre as one node as long as the whole chain, which is
 *   exactly how dagre would draw it: straight, one rank per task.
 */
import type { GraphModel } from "./graph";

/**
 * Edges dagre routes, shortest first until their dummy nodes reach `budget`.
 * In the benchmark flow 164 of 1,309 edges brought 10,776 dummies.
 */
export function routedEdges(model: GraphModel, budget = Math.max(500, model.nodes.length)): Set<string> {
  const depth = depths(model);
  const spans = model.edges
    .map((e) => ({ id: e.id, span: Math.max(1, (depth.get(e.to) ?? 0) - (depth.get(e.from) ?? 0)) }))
    .sort((a, b) => a.span - b.span);
  const routed = new Set<string>();
  let dummies = 0;
  for (const { id, span } of spans) {
    if (span > 1 && dummies + span - 1 > budget) break;
    dummies += span - 1;
    routed.add(id);
  }
  return routed;
}

export interface Chains {
  /** Chain id (its first task's slug) -> member slugs in flow order; every node is in one chain. */
  members: Map<string, string[]>;
  chainOf: Map<string, string>;
}

/** Maximal chains over the routed edges; a task alone is a chain of one. */
export function findChains(model: GraphModel, routed: ReadonlySet<string>): Chains {
  const indeg = new Map<string, number>();
  const outs = new Map<string, string[]>();
  for (const e of model.edges) {
    if (!routed.has(e.id)) continue;
    indeg.set(e.to, (indeg.get(e.to) ?? 0) + 1);
    const list = outs.get(e.from);
    if (list) list.push(e.to);
    else outs.set(e.from, [e.to]);
  }
  const next = (slug: string): string | null => {
    const out = outs.get(slug);
    if (!out || out.length !== 1) return null;
    const to = out[0] as string;
    return indeg.get(to) === 1 ? to : null;
  };
  const continues = new Set<string>();
  for (const node of model.nodes) {
    const to = next(node.slug);
    if (to !== null) continues.add(to);
  }
  const members = new Map<string, string[]>();
  const chainOf = new Map<string, string>();
  // Heads in task order, so dagre still sees the notebook's order as its tie-break.
  for (const node of model.nodes) {
    if (continues.has(node.slug)) continue;
    const chain = [node.slug];
    for (let to = next(node.slug); to !== null; to = next(to)) chain.push(to);
    members.set(node.slug, chain);
    for (const slug of chain) chainOf.set(slug, node.slug);
  }
  return { members, chainOf };
}

/** Longest-path depth from the sources: only to estimate edge spans, dagre does the ranking. */
function depths(model: GraphModel): Map<string, number> {
  const incoming = new Map<string, string[]>();
  for (const e of model.edges) {
    const list = incoming.get(e.to);
    if (list) list.push(e.from);
    else incoming.set(e.to, [e.from]);
  }
  const depth = new Map<string, number>();
  for (const node of model.nodes) {
    if (depth.has(node.slug)) continue;
    // Iterative DFS: flows can be thousands of tasks deep.
    depth.set(node.slug, 0); // also guards against a cycle in malformed input
    const stack: [string, number][] = [[node.slug, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1] as [string, number];
      const ups = incoming.get(top[0]) ?? [];
      if (top[1] < ups.length) {
        const up = ups[top[1]++] as string;
        if (!depth.has(up)) {
          depth.set(up, 0);
          stack.push([up, 0]);
        }
        continue;
      }
      stack.pop();
      let d = 0;
      for (const up of ups) d = Math.max(d, (depth.get(up) ?? 0) + 1);
      depth.set(top[0], d);
    }
  }
  return depth;
}
