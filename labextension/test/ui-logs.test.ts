import { describe, expect, it } from "vitest";
import { LogStore, filterLogs, highlight, summaryLine } from "../src/ui/logs";

const store = (): LogStore => {
  const s = new LogStore();
  s.add([
    { seq: 1, task: "load", level: "DEBUG", message: "connecting", timestamp: 1 },
    { seq: 2, task: "load", level: "INFO", message: "Loaded 3 rows", timestamp: 2 },
    { seq: 3, task: "clean", level: "WARNING", message: "dropped 1 row", timestamp: 3 },
    { seq: 4, task: "clean", level: "ERROR", message: "Traceback (most recent call last):\n  File x\nValueError: bad row", timestamp: 4 },
    { seq: 5, task: null, level: "info", message: "flow done", timestamp: 5 },
  ]);
  return s;
};
const messages = (lines: { message: string }[]): string[] => lines.map((l) => l.message.split("\n")[0] ?? "");

describe("LogStore", () => {
  it("keeps a line once whether it came from the API (with seq) or the feed (with or without)", () => {
    const s = store();
    expect(s.add([{ seq: 2, task: "load", level: "INFO", message: "Loaded 3 rows", timestamp: 2 }])).toBe(0);
    expect(s.add([{ task: "load", level: "INFO", message: "Loaded 3 rows", timestamp: 2 }])).toBe(0);
    expect(s.add([{ seq: 6, task: "load", level: "INFO", message: "Loaded 3 rows", timestamp: 9 }])).toBe(1);
    expect(s.lines).toHaveLength(6);
  });
});

describe("filterLogs", () => {
  it("filters by minimum level, task and case-insensitive text", () => {
    const { lines } = store();
    expect(filterLogs(lines, { minLevel: "DEBUG", search: "", task: null })).toBe(lines);
    expect(messages(filterLogs(lines, { minLevel: "WARNING", search: "", task: null }))).toEqual(["dropped 1 row", "Traceback (most recent call last):"]);
    expect(messages(filterLogs(lines, { minLevel: "DEBUG", search: "ROW", task: null }))).toEqual(["Loaded 3 rows", "dropped 1 row", "Traceback (most recent call last):"]);
    expect(messages(filterLogs(lines, { minLevel: "INFO", search: "row", task: "load" }))).toEqual(["Loaded 3 rows"]);
    expect(messages(filterLogs(lines, { minLevel: "INFO", search: "", task: null }))).toContain("flow done");
  });

  it("filters 10,000 lines in well under a frame", () => {
    const s = new LogStore();
    s.add(Array.from({ length: 10_000 }, (_, i) => ({ seq: i, task: `t${i % 50}`, level: i % 7 ? "INFO" : "ERROR", message: `line ${i} of the run`, timestamp: i })));
    const t0 = performance.now();
    const shown = filterLogs(s.lines, { minLevel: "ERROR", search: "of the", task: "t7" });
    expect(performance.now() - t0).toBeLessThan(50);
    expect(shown.every((l) => l.level === "ERROR" && l.task === "t7")).toBe(true);
    expect(shown.length).toBeGreaterThan(0);
  });
});

describe("showing a line", () => {
  it("marks the first match of the search text", () => {
    expect(highlight("Loaded 3 rows", "3 ROW")).toEqual(["Loaded ", "3 row", "s"]);
    expect(highlight("Loaded", "x")).toEqual(["Loaded"]);
    expect(highlight("Loaded", "  ")).toEqual(["Loaded"]);
  });

  it("sums up a traceback by its exception and other multi-line text by its first line", () => {
    expect(summaryLine("Traceback (most recent call last):\n  File x\nValueError: bad row\n")).toBe("ValueError: bad row (traceback, 4 lines)");
    expect(summaryLine("a\nb")).toBe("a …");
    expect(summaryLine("one line")).toBe("one line");
  });
});
