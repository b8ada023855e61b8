// The JupyterLab extension's pure parts: what a task cell's badge and detail say.
// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";

import { badgeNote, badgeText, badgeTitle, formatDuration, renderBadge } from "../src/lab/badge";
import { splitError } from "../src/lab/detail";
import { mentionsNbflow, parseIncoming, type Badge, type Detail } from "../src/lab/protocol";

const badge = (over: Partial<Badge> = {}): Badge => ({
  task: "clean",
  state: "Success",
  attempt: 1,
  duration: 0.42,
  message: "",
  stale: "",
  upstream_failed: [],
  ...over,
});

describe("badge text", () => {
  it.each([
    [0.42, "0.42s"],
    [3.21, "3.2s"],
    [42.4, "42s"],
    [185, "3m 05s"],
    [3725, "1h 02m"],
    [null, ""],
  ])("formatDuration(%s) is %j", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it("shows an icon and the duration of a finished task, the state of a running one", () => {
    expect(badgeText(badge())).toBe("✓ 0.42s");
    expect(badgeText(badge({ state: "Failed", duration: 1.5 }))).toBe("✗ 1.5s");
    expect(badgeText(badge({ state: "Running", duration: 3 }))).toBe("▶ Running");
    expect(badgeText(badge({ state: null, duration: null }))).toBe("○ not run");
  });

  it("notes a retried success, a failed upstream and staleness", () => {
    expect(badgeNote(badge())).toBe("");
    expect(badgeNote(badge({ attempt: 2 }))).toBe("try 2");
    expect(badgeNote(badge({ stale: "its code changed since it ran" }))).toBe("stale");
    expect(badgeNote(badge({ state: "TriggerFailed", upstream_failed: ["load"], stale: "x" }))).toBe("upstream ✗");
    const title = badgeTitle(badge({ attempt: 2, upstream_failed: ["load"], stale: "'load' ran again after it" }));
    expect(title).toContain("task clean: Success in 0.42s (attempt 2)");
    expect(title).toContain("upstream failed: load");
    expect(title).toContain("stale: 'load' ran again after it");
  });

  it("renders the state and findings as data attributes", () => {
    const el = document.createElement("div");
    renderBadge(el, badge({ state: "TimedOut", stale: "x", attempt: 3 }));
    expect(el.className).toContain("nbflow-cell-badge-failed");
    expect(el.dataset.state).toBe("TimedOut");
    expect(el.dataset.stale).toBe("true");
    expect(el.textContent).toContain("try 3");
  });
});

describe("messages and detail", () => {
  it("parses the kernel's messages and ignores others", () => {
    expect(parseIncoming({ type: "states", cells: {} })).toEqual({ type: "states", cells: {} });
    expect(parseIncoming({ type: "notice", message: "moved" })).toEqual({ type: "notice", message: "moved" });
    expect(parseIncoming({ type: "detail" })).toBeNull();
    expect(parseIncoming("states")).toBeNull();
    expect(parseIncoming(null)).toBeNull();
  });

  const detail = (message: string, logs: [string, string][]): Detail => ({
    task: "t", state: "Failed", message, attempt: 1, duration: 1,
    logs: logs.map(([level, text], i) => ({ timestamp: i, level, message: text })),
  });

  it("shows a traceback once and not an error that repeats the message", () => {
    const tb = "Traceback (most recent call last):\n  line 2\nZeroDivisionError: division by zero";
    const shown = splitError(detail("ZeroDivisionError: division by zero", [["INFO", "start"], ["ERROR", tb]]));
    expect(shown.error).toBe(tb);
    expect(shown.rest.map((l) => l.message)).toEqual(["start"]);
    const repeat = splitError(
      detail("ShellCommandError: exited with code 1", [["ERROR", "nbflow.x.ShellCommandError: exited with code 1"]]),
    );
    expect(repeat).toEqual({ error: "", rest: [] });
  });

  it.each([
    [["%load_ext nbflow\n%flow name x"], true],
    [["x = 1", "  %%task clean --retries 2\ny = x"], true],
    [["%%shell_task prepare\nls"], true],
    [["%%tasks\n", "print('%load_ext nbflowers')"], false],
    [["x = 1\n%%task"], false],
  ])("mentionsNbflow(%j) is %s", (sources, expected) => {
    expect(mentionsNbflow(sources)).toBe(expected);
  });
});
