import { describe, expect, it } from "vitest";
import css from "../src/dag/dag.css?raw";
import { STATE_COLORS, STATE_NAMES, isActive, isFailed, isFinished } from "../src/dag/states";


describe("states", () => {
  it("lists the engine's 13 states in lifecycle order", () => {
    expect(STATE_NAMES).toHaveLength(13);
    expect(STATE_NAMES[0]).toBe("Scheduled");
    expect(STATE_NAMES.at(-1)).toBe("Cancelled");
  });

  it("groups finished, failed and active states like the engine", () => {
    expect(STATE_NAMES.filter(isFinished)).toEqual([
      "Success",
      "Cached",
      "Skipped",
      "Failed",
      "TriggerFailed",
      "TimedOut",
      "Cancelled",
    ]);
    expect(STATE_NAMES.filter(isFailed)).toEqual(["Failed", "TriggerFailed", "TimedOut"]);
    expect(STATE_NAMES.filter(isActive)).toEqual(["Submitted", "Running", "Retrying", "Cancelling"]);
  });

  it("gives every state a colour the stylesheet paints with the same fallback", () => {
    for (const [state, colour] of Object.entries(STATE_COLORS)) {
      const rule = new RegExp(`\\[data-state="${state}"\\] \\{\\s*--nbflow-c: var\\(--nbflow-state-[a-z-]+, ${colour}\\);`);
      expect(css, state).toMatch(rule);
    }
  });
});
