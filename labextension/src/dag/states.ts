/**
 * State names, their groups and colours: the one place the UI learns them.
 * Names and groups come from `record.ts`, generated from the Python run record.
 */
import { ACTIVE_STATES, FAILED_STATES, FINISHED_STATES, STATE_NAMES } from "./record";
import type { DisplayState, StateName } from "./types";

/** Lifecycle order: legends, summaries and counts list states this way. */
export { STATE_NAMES };

const FINISHED: ReadonlySet<string> = new Set(FINISHED_STATES);
const FAILED: ReadonlySet<string> = new Set(FAILED_STATES);
const ACTIVE: ReadonlySet<string> = new Set(ACTIVE_STATES);

export const isStateName = (value: unknown): value is StateName =>
  typeof value === "string" && (STATE_NAMES as readonly string[]).includes(value);
export const isFinished = (state: DisplayState): boolean => FINISHED.has(state);
export const isFailed = (state: DisplayState): boolean => FAILED.has(state);
export const isActive = (state: DisplayState): boolean => ACTIVE.has(state);

/**
 * Colours as CSS custom properties so a page (or a JupyterLab theme) can
 * override them; the fallbacks are chosen to read on light and dark
 * backgrounds because nodes draw them as a tinted fill plus a solid stroke.
 */
export const STATE_COLORS: Readonly<Record<DisplayState, string>> = {
  NotRun: "#9e9e9e",
  Scheduled: "#8e7cc3",
  Pending: "#a0a8b0",
  Submitted: "#5b9bd5",
  Running: "#1e88e5",
  Retrying: "#f5a623",
  Success: "#2e9d4f",
  Cached: "#26a69a",
  Skipped: "#b0b48a",
  Failed: "#d93025",
  TriggerFailed: "#e8710a",
  TimedOut: "#c2185b",
  Cancelling: "#8d6e63",
  Cancelled: "#6d4c41",
};

export const stateLabel = (state: DisplayState): string => (state === "NotRun" ? "not run" : state);
