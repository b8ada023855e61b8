/** Progress figures for a run and the short texts the UI prints for durations. */
import { SUCCESSFUL_STATES } from "./record";
import { STATE_NAMES, isActive, isFailed, isFinished } from "./states";
import type { RunSnapshot, StateName } from "./types";

export interface ProgressSummary {
  total: number;
  done: number;
  running: number;
  failed: number;
  /** Tasks cancelled (finished, neither successful nor failed). */
  cancelled: number;
  /** Count per state of the graph's tasks (tasks without a state are not counted). */
  counts: Partial<Record<StateName, number>>;
  runState: StateName | null;
  /** The id of the flow run the states belong to (empty before a run). */
  runId: string;
  /** Seconds since the run started (to its end when finished); null before a run. */
  elapsed: number | null;
}

const SUCCESSFUL: ReadonlySet<string> = new Set(SUCCESSFUL_STATES);

export function summarize(snapshot: RunSnapshot, slugs: readonly string[], nowSeconds: number): ProgressSummary {
  const counts: Partial<Record<StateName, number>> = {};
  let done = 0;
  let running = 0;
  let failed = 0;
  let cancelled = 0;
  for (const slug of slugs) {
    const entry = snapshot.tasks[slug];
    if (!entry) continue;
    counts[entry.state] = (counts[entry.state] ?? 0) + 1;
    if (isFinished(entry.state)) done++;
    if (isActive(entry.state)) running++;
    if (isFailed(entry.state)) failed++;
    else if (isFinished(entry.state) && !SUCCESSFUL.has(entry.state)) cancelled++;
  }
  const run = snapshot.run;
  const elapsed =
    run && run.started !== null ? Math.max(0, (run.ended ?? nowSeconds) - run.started) : null;
  return { total: slugs.length, done, running, failed, cancelled, counts, runState: run?.state ?? null, runId: run?.flow_run_id ?? "", elapsed };
}

/** States in lifecycle order with their counts, zeros left out. */
export const countsInOrder = (s: ProgressSummary): [StateName, number][] =>
  STATE_NAMES.flatMap((name) => {
    const n = s.counts[name];
    return n ? [[name, n] as [StateName, number]] : [];
  });

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 9.95) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** How long a task has run: to its end, or to now while it is still going. */
export function taskDuration(
  entry: { started: number | null; ended: number | null } | undefined,
  nowSeconds: number,
): number | null {
  if (!entry || entry.started === null) return null;
  return Math.max(0, (entry.ended ?? nowSeconds) - entry.started);
}

/** A mapped task's children by state, as its node's status shows them: "3 success, 1 failed". */
export function childSummary(children: Record<string, number>): string {
  return Object.entries(children)
    .map(([state, n]) => `${n} ${state.toLowerCase()}`)
    .join(", ");
}
