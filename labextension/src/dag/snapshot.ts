/**
 * Run state as the UI sees it, and how engine events change it.
 *
 * The Python widget keeps the same snapshot (nbflow/kernel/widget.py) and
 * both sides are checked against one shared fixture, so a snapshot built in
 * the kernel and one built from streamed events in the browser agree.
 */
import { isFinished, isStateName } from "./states";
import type {
  CompactSnapshot,
  EngineEvent,
  FlowRunState,
  RunSnapshot,
  StateName,
  TaskRunState,
} from "./types";

export const emptySnapshot = (): RunSnapshot => ({ run: null, tasks: {} });

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown): string => (typeof v === "string" ? v : "");

/** Accept the compact wire form (missing fields mean empty) and reject junk quietly. */
export function normalizeSnapshot(raw: CompactSnapshot | null | undefined): RunSnapshot {
  const out = emptySnapshot();
  if (!raw || typeof raw !== "object") return out;
  const run = raw.run;
  if (run && isStateName(run.state)) {
    out.run = {
      flow_run_id: str(run.flow_run_id),
      state: run.state,
      message: str(run.message),
      started: num(run.started),
      ended: num(run.ended),
    };
  }
  for (const [slug, t] of Object.entries(raw.tasks ?? {})) {
    if (!t || !isStateName(t.state)) continue;
    out.tasks[slug] = {
      state: t.state,
      attempt: num(t.attempt) ?? 0,
      message: str(t.message),
      started: num(t.started),
      ended: num(t.ended),
      ...(childCounts(t.children) ? { children: childCounts(t.children) } : {}),
    };
  }
  return out;
}

/** A mapped task's children by state, from the snapshot (undefined when there are none). */
function childCounts(raw: unknown): Record<string, number> | undefined {
  if (!raw || typeof raw !== "object") return undefined;
  const out: Record<string, number> = {};
  for (const [state, n] of Object.entries(raw as Record<string, unknown>)) {
    if (isStateName(state) && typeof n === "number" && Number.isFinite(n)) out[state] = n;
  }
  return Object.keys(out).length ? out : undefined;
}

const sameCounts = (a?: Record<string, number>, b?: Record<string, number>): boolean =>
  JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});

export const sameTaskState = (a: TaskRunState | undefined, b: TaskRunState | undefined): boolean =>
  a === b ||
  (a !== undefined &&
    b !== undefined &&
    a.state === b.state &&
    a.attempt === b.attempt &&
    a.message === b.message &&
    a.started === b.started &&
    a.ended === b.ended &&
    sameCounts(a.children, b.children));

export interface ApplyResult {
  /** Slugs whose entry changed. */
  changed: Set<string>;
  /** True when a new run began: every node was reset to Pending. */
  reset: boolean;
  runChanged: boolean;
}

/**
 * Fold events into `snapshot` in place (a 10,000-event burst must not copy
 * the whole map per event). `slugs` lists the graph's tasks so a new run can
 * reset each of them to Pending.
 */
export function applyEvents(
  snapshot: RunSnapshot,
  events: readonly EngineEvent[],
  slugs: readonly string[],
): ApplyResult {
  const result: ApplyResult = { changed: new Set(), reset: false, runChanged: false };
  for (const ev of events) {
    if (!ev || ev.kind !== "state" || !isStateName(ev.state)) continue;
    if (ev.task === null || ev.task === undefined) {
      applyFlowEvent(snapshot, ev, ev.state, slugs, result);
    } else {
      applyTaskEvent(snapshot, ev, ev.state, result);
    }
  }
  return result;
}

function applyFlowEvent(
  snapshot: RunSnapshot,
  ev: EngineEvent,
  state: StateName,
  slugs: readonly string[],
  result: ApplyResult,
): void {
  const ts = num(ev.timestamp);
  let run: FlowRunState | null = snapshot.run;
  if (state === "Running") {
    run = { flow_run_id: ev.flow_run_id, state, message: str(ev.message), started: ts, ended: null };
    // A run starts from scratch: nodes of the previous run must not look current.
    snapshot.tasks = {};
    for (const slug of slugs) snapshot.tasks[slug] = pendingEntry();
    childStates.delete(snapshot);
    result.reset = true;
  } else {
    if (!run || run.flow_run_id !== ev.flow_run_id) {
      run = { flow_run_id: ev.flow_run_id, state, message: "", started: null, ended: null };
    }
    run = { ...run, state, message: str(ev.message), ended: isFinished(state) ? ts : null };
  }
  snapshot.run = run;
  result.runChanged = true;
}

const pendingEntry = (): TaskRunState => ({
  state: "Pending",
  attempt: 0,
  message: "",
  started: null,
  ended: null,
});

function applyTaskEvent(snapshot: RunSnapshot, ev: EngineEvent, state: StateName, result: ApplyResult): void {
  const slug = ev.task as string;
  const prev = snapshot.tasks[slug] ?? pendingEntry();
  const ts = num(ev.timestamp);
  const attempt = num(ev.attempt);
  snapshot.tasks[slug] = {
    state,
    attempt: attempt !== null && attempt > 0 ? attempt : prev.attempt,
    message: str(ev.message),
    // The first Running of the run starts the clock; retries keep it running.
    started: state === "Running" && prev.started === null ? ts : prev.started,
    ended: isFinished(state) ? ts : null,
    ...(prev.children ? { children: prev.children } : {}), // a mapped task's own end keeps its counts
  };
  result.changed.add(slug);
  countChild(snapshot, slug, state, result);
}

/** A mapped task's child run is named `parent[i]` (slugs never hold brackets otherwise). */
const CHILD = /^(.+)\[(\d+)\]$/;
/** Per snapshot: each child's latest state, so a child moving on moves one count. */
const childStates = new WeakMap<RunSnapshot, Map<string, StateName>>();

/** Fold a child's event into its parent's counts by state: the node shows "3 success, 1 failed"
 * in the browser as the kernel's snapshot does (streamed feeds carry only the children's events). */
function countChild(snapshot: RunSnapshot, slug: string, state: StateName, result: ApplyResult): void {
  const match = CHILD.exec(slug);
  if (!match) return;
  const parent = match[1] as string;
  let states = childStates.get(snapshot);
  if (!states) {
    states = new Map();
    childStates.set(snapshot, states);
  }
  const before = states.get(slug);
  if (before === state) return;
  states.set(slug, state);
  const entry = snapshot.tasks[parent] ?? pendingEntry();
  // Counts come from events alone: the first child seen here starts them from zero.
  const counts: Record<string, number> = before === undefined && !hasChildIn(states, parent, slug) ? {} : { ...entry.children };
  if (before !== undefined) {
    const left = (counts[before] ?? 1) - 1;
    if (left > 0) counts[before] = left;
    else delete counts[before];
  }
  counts[state] = (counts[state] ?? 0) + 1;
  snapshot.tasks[parent] = { ...entry, children: counts };
  result.changed.add(parent);
}

function hasChildIn(states: Map<string, StateName>, parent: string, except: string): boolean {
  for (const slug of states.keys()) {
    if (slug !== except && slug.startsWith(`${parent}[`)) return true;
  }
  return false;
}
