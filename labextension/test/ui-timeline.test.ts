import { describe, expect, it } from "vitest";
import type { Attempt } from "../src/ui/runmodel";
import { bars, ticks, timeBounds, timeScale, timelineRows } from "../src/ui/timeline";
import { visibleRange } from "../src/ui/components/VirtualList";

const attempts = new Map<string, Attempt[]>([
  ["late", [{ attempt: 1, start: 20, end: 30, state: "Success" }]],
  ["retried", [
    { attempt: 1, start: 10, end: 12, state: "Retrying" },
    { attempt: 2, start: 14, end: null, state: "Running" },
  ]],
  ["first", [{ attempt: 1, start: 10, end: 11, state: "Failed" }]],
]);

describe("timeline layout", () => {
  it("orders rows by first start, ties in task order", () => {
    const rows = timelineRows(["first", "retried", "late", "never"], attempts);
    expect(rows.map((r) => r.slug)).toEqual(["first", "retried", "late"]);
  });

  it("spans first start to last end, or to now while something runs", () => {
    const rows = timelineRows(["first", "retried", "late"], attempts);
    expect(timeBounds(rows, 40)).toEqual([10, 40]);
    expect(timeBounds([], 40)).toEqual([39, 40]);
  });

  it("draws one bar per attempt on the scale, a running one up to now, none thinner than 2 px", () => {
    const rows = timelineRows(["first", "retried", "late"], attempts);
    const scale = timeScale(10, 40, 300);
    const retried = rows.find((r) => r.slug === "retried");
    expect(retried && bars(retried, scale, 40)).toEqual([
      { attempt: 1, x: 0, width: 20, state: "Retrying", running: false, start: 10, end: 12 },
      { attempt: 2, x: 40, width: 260, state: "Running", running: true, start: 14, end: 40 },
    ]);
    const instant = timelineRows(["x"], new Map([["x", [{ attempt: 1, start: 10, end: 10, state: "Skipped" as const }]]]));
    expect(bars(instant[0]!, scale, 40)[0]?.width).toBe(2);
  });

  it("puts ticks on round steps with readable labels", () => {
    expect(ticks(0, 30, 4).map((t) => t.label)).toEqual(["0s", "10s", "20s", "30s"]);
    expect(ticks(100, 100 + 3600, 5).map((t) => t.label)).toEqual(["0m", "15m", "30m", "45m", "1h"]);
    expect(ticks(0, 2.5, 6).map((t) => t.label)).toEqual(["0.0s", "0.5s", "1.0s", "1.5s", "2.0s", "2.5s"]);
    expect(ticks(0, 3 * 86400, 4).map((t) => t.label)).toEqual(["0h", "24h", "48h", "72h"]);
  });
});

describe("virtual lists", () => {
  it("draw only the rows in view plus a few", () => {
    expect(visibleRange(0, 400, 20, 10_000)).toEqual({ start: 0, end: 28 });
    expect(visibleRange(20_000, 400, 20, 10_000)).toEqual({ start: 992, end: 1028 });
    expect(visibleRange(199_800, 400, 20, 10_000)).toEqual({ start: 9982, end: 10_000 });
    expect(visibleRange(-50, 400, 20, 5)).toEqual({ start: 0, end: 5 });
  });
});
