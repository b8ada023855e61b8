import { describe, expect, it } from "vitest";
import { applyEvents, emptySnapshot, normalizeSnapshot } from "../src/dag/snapshot";
import type { RunSnapshot } from "../src/dag/types";
import { runFixture, stateEvent } from "./helpers";

/** The kernel sends times rounded to the millisecond; compare at that precision. */
const inMs = (s: RunSnapshot): RunSnapshot =>
  JSON.parse(JSON.stringify(s), (key, v: unknown) =>
    (key === "started" || key === "ended") && typeof v === "number" ? Math.round(v * 1000) : v,
  ) as RunSnapshot;

const slugs = ["load", "clean"];

describe("applyEvents", () => {
  it("reaches the snapshot the Python widget built from the same engine run", () => {
    const fixture = runFixture();
    const snapshot = emptySnapshot();
    applyEvents(snapshot, fixture.events, fixture.graph.tasks.map((t) => t.slug));
    expect(inMs(snapshot)).toEqual(inMs(normalizeSnapshot(fixture.expected)));
  });

  it("gives the same result when the events arrive in many small batches", () => {
    const fixture = runFixture();
    const slugsOfRun = fixture.graph.tasks.map((t) => t.slug);
    const whole = emptySnapshot();
    applyEvents(whole, fixture.events, slugsOfRun);
    const batched = emptySnapshot();
    for (let i = 0; i < fixture.events.length; i += 3) applyEvents(batched, fixture.events.slice(i, i + 3), slugsOfRun);
    expect(batched).toEqual(whole);
  });

  it("resets every task to Pending when a flow run starts", () => {
    const snapshot = emptySnapshot();
    applyEvents(snapshot, [stateEvent(null, "Running"), stateEvent("load", "Running"), stateEvent("load", "Failed")], slugs);
    const result = applyEvents(snapshot, [stateEvent(null, "Running", { flow_run_id: "run-2" })], slugs);
    expect(result.reset).toBe(true);
    expect(snapshot.run?.flow_run_id).toBe("run-2");
    expect(snapshot.tasks).toEqual({
      load: { state: "Pending", attempt: 0, message: "", started: null, ended: null },
      clean: { state: "Pending", attempt: 0, message: "", started: null, ended: null },
    });
  });

  it("keeps the first start across retries and records the attempt", () => {
    const snapshot = emptySnapshot();
    const first = stateEvent("load", "Running", { attempt: 1 });
    applyEvents(
      snapshot,
      [
        first,
        stateEvent("load", "Retrying", { attempt: 1, message: "attempt 1 failed" }),
        stateEvent("load", "Running", { attempt: 2 }),
        stateEvent("load", "Success", { attempt: 2, timestamp: first.timestamp + 5 }),
      ],
      slugs,
    );
    expect(snapshot.tasks.load).toMatchObject({
      state: "Success",
      attempt: 2,
      started: first.timestamp,
      ended: first.timestamp + 5,
    });
  });

  it("reports which tasks changed and ignores logs and unknown states", () => {
    const snapshot = emptySnapshot();
    const result = applyEvents(
      snapshot,
      [
        stateEvent("load", "Running"),
        { kind: "log", flow_run_id: "run-1", task: "clean", timestamp: 1, level: "INFO", message: "hi" },
        { ...stateEvent("clean", "Running"), state: "Exploded" as never },
      ],
      slugs,
    );
    expect([...result.changed]).toEqual(["load"]);
    expect(Object.keys(snapshot.tasks)).toEqual(["load"]);
  });

  it("ends the run and keeps its start time when it finishes", () => {
    const snapshot = emptySnapshot();
    const start = stateEvent(null, "Running");
    const end = stateEvent(null, "Failed", { message: "1 of 2 tasks failed" });
    applyEvents(snapshot, [start, end], slugs);
    expect(snapshot.run).toEqual({
      flow_run_id: "run-1",
      state: "Failed",
      message: "1 of 2 tasks failed",
      started: start.timestamp,
      ended: end.timestamp,
    });
  });
});

describe("normalizeSnapshot", () => {
  it("fills the fields the compact wire form leaves out", () => {
    expect(normalizeSnapshot({ run: null, tasks: { a: { state: "Pending" } } })).toEqual({
      run: null,
      tasks: { a: { state: "Pending", attempt: 0, message: "", started: null, ended: null } },
    });
  });

  it("drops entries it cannot understand", () => {
    const raw = { run: { state: "Nope" }, tasks: { a: { state: 3 }, b: null } } as never;
    expect(normalizeSnapshot(raw)).toEqual({ run: null, tasks: {} });
    expect(normalizeSnapshot(undefined)).toEqual({ run: null, tasks: {} });
  });
});

describe("mapped tasks", () => {
  it("keep their children's counts by state from the kernel's snapshot", async () => {
    const { childSummary } = await import("../src/dag/summary");
    const snapshot = normalizeSnapshot({
      run: null,
      tasks: { parsed: { state: "Failed", children: { Success: 2, Failed: 1, Bogus: 4 } } },
    } as never);
    const children = snapshot.tasks.parsed?.children;
    expect(children).toEqual({ Success: 2, Failed: 1 });
    expect(childSummary(children ?? {})).toBe("2 success, 1 failed");
  });

  it("count their children's states from streamed events, a child moving on moving one count", () => {
    const snapshot = emptySnapshot();
    const events = [
      stateEvent(null, "Running"),
      stateEvent("parse", "Running"),
      ...[0, 1, 2].map((i) => stateEvent(`parse[${i}]`, "Running")),
      stateEvent("parse[0]", "Success"),
      stateEvent("parse[1]", "Success"),
      stateEvent("parse[2]", "Retrying"),
    ];
    const first = applyEvents(snapshot, events, ["parse"]);
    expect(snapshot.tasks.parse?.children).toEqual({ Success: 2, Retrying: 1 });
    expect(first.changed.has("parse")).toBe(true);
    applyEvents(snapshot, [stateEvent("parse[2]", "Running"), stateEvent("parse[2]", "Failed")], ["parse"]);
    expect(snapshot.tasks.parse?.children).toEqual({ Success: 2, Failed: 1 });
    applyEvents(snapshot, [stateEvent("parse[2]", "Failed")], ["parse"]); // a re-delivery counts once
    expect(snapshot.tasks.parse?.children).toEqual({ Success: 2, Failed: 1 });
    applyEvents(snapshot, [stateEvent("parse", "Failed")], ["parse"]); // the parent's own end keeps them
    expect(snapshot.tasks.parse).toMatchObject({ state: "Failed", children: { Success: 2, Failed: 1 } });
    applyEvents(snapshot, [stateEvent(null, "Running"), stateEvent("parse[0]", "Running")], ["parse"]);
    expect(snapshot.tasks.parse?.children).toEqual({ Running: 1 }); // a new run starts from zero
  });
});
