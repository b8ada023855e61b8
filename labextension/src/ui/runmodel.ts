/**
 * A flow run as the run page sees it: the renderer's snapshot (folded by the
 * renderer's own `applyEvents`, so the DAG, the table and the timeline agree)
 * plus every attempt of every task for the timeline.
 *
 * The page opens the feed, then loads the run's history, then folds what the
 * feed delivered meanwhile: events already covered by the history (a
 * transition seen before, or older than what is known for that task) are
 * dropped.
 */
import { applyEvents, emptySnapshot } from "../dag/snapshot";
import { isFinished, isStateName } from "../dag/states";
import type { EngineEvent, RunSnapshot, StateName } from "../dag/types";
import type { FeedEvent } from "./feed";
import type { HistoryRow } from "./queries";

export interface Attempt {
  attempt: number;
  /** Epoch seconds. */
  start: number;
  /** Null while the attempt runs. */
  end: number | null;
  /** Running while open; then how it ended (Retrying means "failed, tried again"). */
  state: StateName;
}

export class RunModel {
  readonly snapshot: RunSnapshot = emptySnapshot();
  readonly attempts = new Map<string, Attempt[]>();
  /** Bumped on every accepted change: views re-render when it moves. */
  version = 0;
  private readonly lastTask = new Map<string, number>();
  private lastFlow = Number.NEGATIVE_INFINITY;
  private readonly transitions = new Set<string>();

  constructor(
    readonly flowRunId: string,
    readonly slugs: readonly string[],
  ) {}

  /** Fold state events in order; returns those accepted (the DAG view gets the same ones). */
  applyStates(events: readonly FeedEvent[]): FeedEvent[] {
    const accepted: FeedEvent[] = [];
    for (const ev of events) {
      if (ev.kind !== "state" || !isStateName(ev.state) || !this.isNew(ev)) continue;
      accepted.push(ev);
      if (ev.task === null || ev.task === undefined) {
        if (ev.state === "Running") this.attempts.clear();
      } else {
        this.foldAttempt(ev.task, ev.state, ev.attempt ?? 0, ev.timestamp);
      }
    }
    if (accepted.length) {
      applyEvents(this.snapshot, accepted as EngineEvent[], this.slugs);
      this.version++;
    }
    return accepted;
  }

  private isNew(ev: FeedEvent): boolean {
    if (ev.transition_id) {
      if (this.transitions.has(ev.transition_id)) return false;
      this.transitions.add(ev.transition_id);
    }
    const ts = typeof ev.timestamp === "number" ? ev.timestamp : 0;
    if (ev.task === null || ev.task === undefined) {
      const same = ts === this.lastFlow && this.snapshot.run?.state === ev.state;
      if (ts < this.lastFlow || same) return false;
      this.lastFlow = ts;
      return true;
    }
    const last = this.lastTask.get(ev.task);
    if (last !== undefined) {
      const same = ts === last && this.snapshot.tasks[ev.task]?.state === ev.state;
      if (ts < last || same) return false;
    }
    this.lastTask.set(ev.task, ts);
    return true;
  }

  private foldAttempt(slug: string, state: StateName, attempt: number, ts: number): void {
    let list = this.attempts.get(slug);
    if (!list) {
      list = [];
      this.attempts.set(slug, list);
    }
    const last = list[list.length - 1];
    const open = last !== undefined && last.end === null ? last : undefined;
    if (state === "Running") {
      const number = attempt > 0 ? attempt : list.length + 1;
      if (open && open.attempt === number) return;
      if (open) open.end = ts;
      list.push({ attempt: number, start: ts, end: null, state });
    } else if (state === "Retrying" || isFinished(state)) {
      if (open) {
        open.end = ts;
        open.state = state;
      } else if (state !== "Retrying") {
        // Finished without running (Skipped, Cached, TriggerFailed, Cancelled): an instant.
        list.push({ attempt: Math.max(attempt, 1), start: ts, end: ts, state });
      }
    }
  }
}

/** The run's recorded history as the feed's events (same order, same transition ids). */
export function historyEvents(flowRunId: string, history: readonly HistoryRow[]): FeedEvent[] {
  return history.map(
    ([position, task, state, message, attempt, timestamp, transitionId]): FeedEvent => ({
      kind: "state",
      flow_run_id: flowRunId,
      task,
      state: state as StateName,
      message,
      attempt,
      timestamp,
      position,
      ...(transitionId ? { transition_id: transitionId } : {}),
    }),
  );
}
