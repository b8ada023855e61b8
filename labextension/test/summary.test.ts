import { describe, expect, it } from "vitest";
import { normalizeSnapshot } from "../src/dag/snapshot";
import { countsInOrder, formatDuration, summarize, taskDuration } from "../src/dag/summary";
import { runFixture } from "./helpers";

describe("summarize", () => {
  it("counts done, running, failed and total over the graph's tasks", () => {
    const snapshot = normalizeSnapshot({
      run: { flow_run_id: "r", state: "Running", started: 100 },
      tasks: {
        a: { state: "Success" },
        b: { state: "Failed" },
        c: { state: "TimedOut" },
        d: { state: "Running" },
        e: { state: "Retrying" },
        f: { state: "Pending" },
        ghost: { state: "Success" },
      },
    });
    const s = summarize(snapshot, ["a", "b", "c", "d", "e", "f", "g"], 112.5);
    expect(s).toMatchObject({ total: 7, done: 3, running: 2, failed: 2, runState: "Running", elapsed: 12.5 });
    expect(s.runId).not.toBe("");
    expect(countsInOrder(s)).toEqual([
      ["Pending", 1],
      ["Running", 1],
      ["Retrying", 1],
      ["Success", 1],
      ["Failed", 1],
      ["TimedOut", 1],
    ]);
  });

  it("stops the clock when the run has ended", () => {
    const fixture = runFixture();
    const snapshot = normalizeSnapshot(fixture.expected);
    const s = summarize(snapshot, fixture.graph.tasks.map((t) => t.slug), 9e9);
    const run = snapshot.run;
    expect(s.elapsed).toBeCloseTo((run?.ended ?? 0) - (run?.started ?? 0), 6);
    expect(s).toMatchObject({ total: 6, done: 6, failed: 2, running: 0 });
  });

  it("has no elapsed time before a run", () => {
    expect(summarize(normalizeSnapshot({}), ["a"], 5).elapsed).toBeNull();
  });
});

describe("durations", () => {
  it.each([
    [0.42, "0.4s"],
    [9.96, "10s"],
    [9.94, "9.9s"],
    [42.9, "43s"],
    [59.7, "1m 00s"],
    [65, "1m 05s"],
    [3 * 3600 + 7 * 60, "3h 07m"],
    [null, ""],
    [-1, ""],
  ])("formats %s as %j", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it("runs to now while a task is still going", () => {
    expect(taskDuration({ started: 10, ended: null }, 14)).toBe(4);
    expect(taskDuration({ started: 10, ended: 11 }, 14)).toBe(1);
    expect(taskDuration({ started: null, ended: 11 }, 14)).toBeNull();
  });
});
