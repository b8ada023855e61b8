import { describe, expect, it } from "vitest";
import type { FeedEvent } from "../src/ui/feed";
import type { HistoryRow } from "../src/ui/queries";
import { RunModel, historyEvents } from "../src/ui/runmodel";

const ev = (task: string | null, state: string, timestamp: number, attempt = 0, extra: Partial<FeedEvent> = {}): FeedEvent =>
  ({ kind: "state", flow_run_id: "r", task, state, timestamp, attempt, message: "", ...extra }) as FeedEvent;

describe("RunModel", () => {
  it("folds states into the renderer's snapshot and every attempt into the timeline", () => {
    const model = new RunModel("r", ["a", "b", "c"]);
    model.applyStates([
      ev(null, "Running", 10),
      ev("a", "Running", 11, 1), ev("a", "Retrying", 12, 1), ev("a", "Running", 13, 2), ev("a", "Success", 15, 2),
      ev("b", "Skipped", 16),
      ev("c", "Running", 16, 1),
    ]);
    expect(model.snapshot.run?.state).toBe("Running");
    expect(model.snapshot.tasks.a).toMatchObject({ state: "Success", attempt: 2, started: 11, ended: 15 });
    expect(model.attempts.get("a")).toEqual([
      { attempt: 1, start: 11, end: 12, state: "Retrying" },
      { attempt: 2, start: 13, end: 15, state: "Success" },
    ]);
    expect(model.attempts.get("b")).toEqual([{ attempt: 1, start: 16, end: 16, state: "Skipped" }]);
    expect(model.attempts.get("c")).toEqual([{ attempt: 1, start: 16, end: null, state: "Running" }]);
  });

  it("drops feed events the loaded history already had, so a late replay cannot turn time back", () => {
    const entry = (task: string | null, state: string, timestamp: number, transitionId: string): HistoryRow => [
      0, task, state, "", task ? 1 : 0, timestamp, transitionId,
    ];
    const model = new RunModel("r", ["a"]);
    model.applyStates(historyEvents("r", [entry(null, "Running", 10, "f1"), entry("a", "Running", 11, "a1"), entry("a", "Success", 12, "a2")]));
    const before = model.version;
    // What the feed buffered while the history loaded: the same flow Running (it would reset
    // every task to Pending) and the task's states, by transition id and, without one, by time.
    const accepted = model.applyStates([
      ev(null, "Running", 10, 0, { transition_id: "f1" }),
      ev("a", "Running", 11, 1, { transition_id: "a1" }),
      ev("a", "Running", 11, 1),
      ev("a", "Success", 12, 1),
    ]);
    expect(accepted).toEqual([]);
    expect(model.version).toBe(before);
    expect(model.snapshot.tasks.a?.state).toBe("Success");
    expect(model.attempts.get("a")).toHaveLength(1);
  });

  it("applies a transition once even when it is delivered twice", () => {
    const model = new RunModel("r", ["a"]);
    const first = model.applyStates([ev("a", "Running", 5, 1, { transition_id: "t1" })]);
    const again = model.applyStates([ev("a", "Running", 6, 1, { transition_id: "t1" })]);
    expect([first.length, again.length]).toEqual([1, 0]);
  });

  it("a new Running of the flow (a resubmitted run) starts the tasks and attempts afresh", () => {
    const model = new RunModel("r", ["a"]);
    model.applyStates([ev(null, "Running", 1), ev("a", "Running", 2, 1)]);
    model.applyStates([ev(null, "Scheduled", 3), ev(null, "Running", 4)]);
    expect(model.snapshot.tasks.a?.state).toBe("Pending");
    expect(model.attempts.size).toBe(0);
  });

  it("folds 10,000 events of 1,000 tasks quickly", () => {
    const slugs = Array.from({ length: 1000 }, (_, i) => `t${i}`);
    const model = new RunModel("r", slugs);
    const events: FeedEvent[] = [ev(null, "Running", 1)];
    for (let k = 0; events.length < 10_000; k++) {
      const slug = slugs[k % 1000] as string;
      events.push(ev(slug, k < 1000 ? "Running" : k < 9000 && k % 2 ? "Retrying" : "Running", 2 + k, 1 + Math.floor(k / 1000)));
    }
    const t0 = performance.now();
    model.applyStates(events);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(Object.keys(model.snapshot.tasks)).toHaveLength(1000);
  });
});
