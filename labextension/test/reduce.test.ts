import { describe, expect, it } from "vitest";
import { buildGraphModel } from "../src/dag/graph";
import { NODE_WIDTH, layoutGraph } from "../src/dag/layout";
import { findChains, routedEdges } from "../src/dag/reduce";
import type { FlowGraph } from "../src/dag/types";

/** a -> b -> c -> d, with e fanning out of b's chain end and a long edge p -> d. */
const graph = (extraChain = 0): FlowGraph => {
  const tasks = ["p", "a", "b", "c", "d", "e"].map((slug, order) => ({ slug, name: slug, order }));
  const edges = [
    { upstream: "a", downstream: "b", key: "x" },
    { upstream: "b", downstream: "c", key: "x" },
    { upstream: "c", downstream: "d", key: "x" },
    { upstream: "c", downstream: "e", key: "y" },
    { upstream: "p", downstream: "d", key: "p" },
  ];
  for (let i = 0; i < extraChain; i++) {
    const slug = `z${i}`;
    tasks.push({ slug, name: slug, order: tasks.length });
    edges.push({ upstream: i ? `z${i - 1}` : "d", downstream: slug, key: "x" });
  }
  return { name: "g", tasks, edges };
};

describe("findChains", () => {
  it("joins tasks linked one-to-one and stops at fan-outs and fan-ins", () => {
    const model = buildGraphModel(graph());
    const { members, chainOf } = findChains(model, new Set(model.edges.map((e) => e.id)));
    expect([...members.values()]).toEqual([["p"], ["a", "b", "c"], ["d"], ["e"]]);
    expect(chainOf.get("b")).toBe("a");
  });

  it("only follows routed edges", () => {
    const model = buildGraphModel(graph());
    const routed = new Set(model.edges.filter((e) => e.from !== "p").map((e) => e.id));
    const { members } = findChains(model, routed);
    expect(members.get("a")).toEqual(["a", "b", "c"]);
    expect(members.get("p")).toEqual(["p"]);
  });
});

describe("routedEdges", () => {
  it("routes everything while the dummy nodes stay within budget", () => {
    const model = buildGraphModel(graph(6));
    expect(routedEdges(model).size).toBe(model.edges.length);
  });

  it("drops the longest edges first once over budget", () => {
    const model = buildGraphModel(graph(6));
    // p sits at depth 0 and d at depth 3: p -> d needs 2 dummies, every other edge none.
    const routed = routedEdges(model, 1);
    expect(routed.has("p\u0000d")).toBe(false);
    expect(routed.size).toBe(model.edges.length - 1);
  });
});

describe("layout of chains", () => {
  const model = buildGraphModel(graph(3));
  const layout = layoutGraph(model, { quality: "best" });

  it("places the tasks of a chain in a straight row, one rank apart", () => {
    const [a, b, c] = ["a", "b", "c"].map((s) => layout.nodes.get(s)!);
    expect(a!.y).toBe(b!.y);
    expect(b!.y).toBe(c!.y);
    expect(b!.x - a!.x).toBe(c!.x - b!.x);
    expect(b!.x - a!.x).toBeGreaterThan(NODE_WIDTH);
  });

  it("attaches edges to the first and last task of a chain, not its middle", () => {
    const into = layout.edges.find((e) => e.from === "c" && e.to === "e")!;
    const c = layout.nodes.get("c")!;
    expect(into.points[0]).toEqual({ x: c.x + c.width, y: c.y + c.height / 2 });
    const zTail = layout.edges.find((e) => e.from === "z1" && e.to === "z2")!;
    expect(zTail.direct).toBe(false);
  });
});
