// @vitest-environment happy-dom
import { describe, expect, it, vi } from "vitest";
import { createDagView } from "../src/dag/view";
import { pipelineGraph } from "./helpers";

// Stand in for dagre running out of stack on a very deep flow.
vi.mock("../src/dag/layout", async (importOriginal) => {
  const real = await importOriginal<typeof import("../src/dag/layout")>();
  return {
    ...real,
    layoutGraph: () => {
      throw new real.LayoutError("could not lay out 12 tasks: the flow is too deep for the layout library");
    },
  };
});

describe("a layout failure", () => {
  it("is shown in place of the graph and reported, and the summary keeps working", () => {
    const onError = vi.fn();
    const host = document.createElement("div");
    document.body.append(host);
    const view = createDagView(host, { onError });
    view.setGraph(pipelineGraph(12));
    expect(onError).toHaveBeenCalledWith(expect.stringContaining("too deep"));
    expect(host.querySelector(".nbflow-dag-message")?.textContent).toContain("too deep");
    expect(host.querySelectorAll("g.nbflow-node")).toHaveLength(0);
    view.setStates({ run: { flow_run_id: "r", state: "Running", started: 1 }, tasks: { s0_b0_t0: { state: "Success" } } });
    expect(view.summary()).toMatchObject({ total: 12, done: 1 });
    view.destroy();
  });
});
