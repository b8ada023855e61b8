// @vitest-environment happy-dom
import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { LogPanel } from "../src/ui/components/LogPanel";
import { type Level, LogStore } from "../src/ui/logs";

afterEach(() => {
  render(null, document.body);
  document.body.replaceChildren();
});

function store(n: number): LogStore {
  const s = new LogStore();
  s.add(Array.from({ length: n }, (_, i) => ({
    seq: i, task: i % 2 ? "load" : "clean", level: i % 10 === 0 ? "ERROR" : "INFO", message: `line ${i}`, timestamp: 1_700_000_000 + i,
  })));
  return s;
}

function show(s: LogStore, filter: { minLevel?: Level; search?: string; task?: string | null } = {}): void {
  act(() => {
    render(
      <LogPanel store={s} version={s.version} minLevel={filter.minLevel ?? "DEBUG"} search={filter.search ?? ""}
        task={filter.task ?? null} names={new Map([["load", "Load rows"]])} onFilter={() => {}} onClearTask={() => {}} />,
      document.body,
    );
  });
}

describe("the log panel", () => {
  it("draws a screenful of 10,000 lines, not all of them", () => {
    show(store(10_000));
    const rows = document.querySelectorAll(".ui-log-row");
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.length).toBeLessThan(100);
    expect(document.querySelector(".ui-log-count")?.textContent).toBe("10,000 of 10,000 lines");
  });

  it("shows what the filter keeps, with the task's name and the match marked", () => {
    show(store(100), { minLevel: "ERROR", search: "LINE 3", task: null });
    expect(document.querySelector(".ui-log-count")?.textContent).toBe("1 of 100 lines");
    const row = document.querySelector(".ui-log-row");
    expect(row?.getAttribute("data-level")).toBe("ERROR");
    expect(row?.querySelector("mark")?.textContent).toBe("line 3");
    show(store(100), { task: "load" });
    expect(document.querySelector(".ui-log-count")?.textContent).toBe("50 of 100 lines");
    expect(document.querySelector(".ui-log-task")?.textContent).toBe("Load rows");
    expect(document.querySelector("button.ui-chip")?.textContent).toContain("task: Load rows");
  });
});
