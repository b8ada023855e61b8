import { describe, expect, it } from "vitest";
import { buildGraphModel, taskInputs, taskOutputs } from "../src/dag/graph";
import type { FlowGraph } from "../src/dag/types";

const etl: FlowGraph = {
  name: "etl",
  tasks: [
    { slug: "clean", name: "clean", kind: "cell", order: 1, upstream: ["load"], defines: ["df"], uses: ["df"] },
    { slug: "load", name: "load", kind: "cell", order: 0, upstream: [], defines: ["df", "meta"], uses: [] },
    { slug: "plot", name: "plot", kind: "cell", order: 2, upstream: ["clean", "load"], defines: [], uses: ["df", "meta"] },
  ],
  edges: [
    { upstream: "load", downstream: "clean", key: "df" },
    { upstream: "clean", downstream: "plot", key: "df" },
    { upstream: "load", downstream: "plot", key: "meta" },
    { upstream: "load", downstream: "plot", key: null },
  ],
};

describe("buildGraphModel", () => {
  it("orders nodes by task order, not list order", () => {
    expect(buildGraphModel(etl).nodes.map((n) => n.slug)).toEqual(["load", "clean", "plot"]);
  });

  it("draws one edge per pair and keeps every name passed along it", () => {
    const model = buildGraphModel({
      ...etl,
      edges: [...etl.edges, { upstream: "load", downstream: "plot", key: "cfg" }],
    });
    const loadPlot = model.edges.filter((e) => e.from === "load" && e.to === "plot");
    expect(loadPlot).toHaveLength(1);
    expect(loadPlot[0]?.keys).toEqual(["meta", "cfg"]);
  });

  it("marks an edge that only orders tasks by giving it no keys", () => {
    const model = buildGraphModel({
      name: "x",
      tasks: [
        { slug: "a", name: "a" },
        { slug: "b", name: "b", upstream: ["a"] },
      ],
      edges: [{ upstream: "a", downstream: "b", key: null }],
    });
    expect(model.edges).toEqual([{ id: "a\u0000b", from: "a", to: "b", keys: [] }]);
  });

  it("drops edges to tasks the structure does not list instead of failing", () => {
    const model = buildGraphModel({
      name: "x",
      tasks: [{ slug: "a", name: "a", upstream: ["gone"] }],
      edges: [{ upstream: "gone", downstream: "a", key: "v" }],
    });
    expect(model.edges).toEqual([]);
  });

  it("keeps the structural key when nothing structural changed and changes it otherwise", () => {
    const base = buildGraphModel(etl).key;
    expect(buildGraphModel(structuredClone(etl)).key).toBe(base);
    const renamed = structuredClone(etl);
    (renamed.tasks[0] as { name: string }).name = "tidy";
    expect(buildGraphModel(renamed).key).not.toBe(base);
    const extraEdge = structuredClone(etl);
    extraEdge.edges.push({ upstream: "load", downstream: "clean", key: "meta" });
    expect(buildGraphModel(extraEdge).key).toBe(base); // same drawn edge, one more name
  });

  it("accepts an empty or missing structure", () => {
    expect(buildGraphModel(null).nodes).toEqual([]);
    expect(buildGraphModel({ name: "e", tasks: [], edges: [] }).edges).toEqual([]);
  });
});

describe("task inputs and outputs", () => {
  it("come from uses/defines of notebook cell tasks", () => {
    expect(taskInputs(etl, "plot")).toEqual(["df", "meta"]);
    expect(taskOutputs(etl, "load")).toEqual(["df", "meta"]);
  });

  it("fall back to edge keys for plain tasks", () => {
    const plain: FlowGraph = {
      name: "p",
      tasks: [
        { slug: "a", name: "a" },
        { slug: "b", name: "b" },
      ],
      edges: [
        { upstream: "a", downstream: "b", key: "rows" },
        { upstream: "a", downstream: "b", key: null },
      ],
    };
    expect(taskInputs(plain, "b")).toEqual(["rows"]);
    expect(taskOutputs(plain, "a")).toEqual(["rows"]);
    expect(taskInputs(plain, "a")).toEqual([]);
  });
});
