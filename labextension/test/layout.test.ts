import { describe, expect, it } from "vitest";
import { buildGraphModel } from "../src/dag/graph";
import { FAST_LAYOUT_ABOVE, NODE_HEIGHT, NODE_WIDTH, edgePath, layoutGraph } from "../src/dag/layout";
import { pipelineGraph } from "./helpers";

const overlaps = (a: { x: number; y: number }, b: { x: number; y: number }): boolean =>
  Math.abs(a.x - b.x) < NODE_WIDTH && Math.abs(a.y - b.y) < NODE_HEIGHT;

describe.each(["best", "fast"] as const)("layoutGraph (%s)", (quality) => {
  const model = buildGraphModel(pipelineGraph(120));
  const layout = layoutGraph(model, { quality });

  it("places every task inside the reported bounds", () => {
    expect(layout.nodes.size).toBe(120);
    for (const box of layout.nodes.values()) {
      expect(box.width).toBe(NODE_WIDTH);
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.y).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(layout.width + 0.5);
      expect(box.y + box.height).toBeLessThanOrEqual(layout.height + 0.5);
    }
  });

  it("never stacks two tasks on top of each other", () => {
    const boxes = [...layout.nodes.values()];
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        expect(overlaps(boxes[i] as never, boxes[j] as never)).toBe(false);
      }
    }
  });

  it("draws left to right: every edge ends right of where it starts", () => {
    expect(layout.edges).toHaveLength(model.edges.length);
    for (const edge of layout.edges) {
      const from = layout.nodes.get(edge.from);
      const to = layout.nodes.get(edge.to);
      expect(to && from && to.x > from.x).toBe(true);
      expect(edge.points.length).toBeGreaterThanOrEqual(2);
    }
  });

  it("is deterministic: the same structure gives the same picture", () => {
    const again = layoutGraph(buildGraphModel(pipelineGraph(120)), { quality });
    expect([...again.nodes.entries()]).toEqual([...layout.nodes.entries()]);
  });
});

describe("layoutGraph", () => {
  it("lays out top to bottom on request", () => {
    const layout = layoutGraph(buildGraphModel(pipelineGraph(10)), { direction: "TB" });
    const first = layout.nodes.get("s0_b0_t0");
    const second = layout.nodes.get("s0_b0_t1");
    expect(second && first && second.y > first.y).toBe(true);
  });

  it("switches to the fast mode above the threshold and stays quick on 1,000 tasks", () => {
    const model = buildGraphModel(pipelineGraph(1000));
    expect(model.nodes.length).toBeGreaterThan(FAST_LAYOUT_ABOVE);
    const t0 = performance.now();
    const layout = layoutGraph(model);
    // Generous bound for slow CI machines; the benchmark records the real figure.
    expect(performance.now() - t0).toBeLessThan(8000);
    expect(layout.nodes.size).toBe(1000);
  });

  it("handles an empty flow", () => {
    const layout = layoutGraph(buildGraphModel({ name: "e", tasks: [], edges: [] }));
    expect(layout.nodes.size).toBe(0);
    expect(layout.edges).toEqual([]);
  });
});

describe("edgePath", () => {
  it("draws a straight segment between two points and curves through more", () => {
    expect(edgePath([{ x: 0, y: 0 }, { x: 10, y: 5 }])).toBe("M0,0L10,5");
    expect(edgePath([{ x: 0, y: 0 }, { x: 10, y: 0 }, { x: 20, y: 10 }])).toBe("M0,0Q10,0 20,10");
    expect(edgePath([])).toBe("");
  });
});
