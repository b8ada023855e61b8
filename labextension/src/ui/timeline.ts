/**
 * The Gantt timeline's geometry (pure): which tasks get a row, in what order,
 * the time scale, one bar per attempt, and the axis ticks.
 */
import type { Attempt } from "./runmodel";

export interface TimelineRow {
  slug: string;
  attempts: readonly Attempt[];
  first: number;
}

export interface Bar {
  attempt: number;
  x: number;
  width: number;
  state: Attempt["state"];
  running: boolean;
  start: number;
  end: number;
}

export interface Scale {
  t0: number;
  t1: number;
  width: number;
  x: (t: number) => number;
}

/** Tasks that ran, by their first start (ties in task order). */
export function timelineRows(order: readonly string[], attempts: ReadonlyMap<string, readonly Attempt[]>): TimelineRow[] {
  const position = new Map(order.map((slug, i) => [slug, i]));
  const rows: TimelineRow[] = [];
  for (const [slug, list] of attempts) {
    const first = list[0];
    if (first) rows.push({ slug, attempts: list, first: first.start });
  }
  rows.sort(
    (a, b) => a.first - b.first || (position.get(a.slug) ?? Infinity) - (position.get(b.slug) ?? Infinity),
  );
  return rows;
}

/** The period shown: from the first start to the last end (or now while something runs). */
export function timeBounds(rows: readonly TimelineRow[], now: number): [number, number] {
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const row of rows) {
    for (const a of row.attempts) {
      t0 = Math.min(t0, a.start);
      t1 = Math.max(t1, a.end ?? now);
    }
  }
  if (!Number.isFinite(t0)) return [now - 1, now];
  return [t0, Math.max(t1, t0 + 1)];
}

export function timeScale(t0: number, t1: number, width: number): Scale {
  const span = Math.max(t1 - t0, 1e-6);
  return { t0, t1, width, x: (t) => ((t - t0) / span) * width };
}

const MIN_BAR = 2;

export function bars(row: TimelineRow, scale: Scale, now: number): Bar[] {
  return row.attempts.map((a) => {
    const end = a.end ?? now;
    const x = scale.x(a.start);
    return {
      attempt: a.attempt,
      x,
      width: Math.max(MIN_BAR, scale.x(end) - x),
      state: a.state,
      running: a.end === null,
      start: a.start,
      end,
    };
  });
}

const STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];

/** Round steps (1 s, 5 s, 1 min, ...) giving at most `max` ticks; labels relative to t0. */
export function ticks(t0: number, t1: number, max: number): { t: number; label: string }[] {
  const span = t1 - t0;
  const step = STEPS.find((s) => span / s <= max) ?? Math.ceil(span / max / 86400) * 86400;
  const out: { t: number; label: string }[] = [];
  for (let k = 0; k * step <= span + 1e-9; k++) out.push({ t: t0 + k * step, label: tickLabel(k * step, step) });
  return out;
}

function tickLabel(offset: number, step: number): string {
  if (step < 1) return `${offset.toFixed(1)}s`;
  if (offset < 60 && step < 60) return `${Math.round(offset)}s`;
  if (offset < 3600 && step < 3600) {
    const m = Math.floor(offset / 60);
    const s = Math.round(offset % 60);
    return s ? `${m}m${String(s).padStart(2, "0")}s` : `${m}m`;
  }
  const h = Math.floor(offset / 3600);
  const m = Math.round((offset % 3600) / 60);
  return m ? `${h}h${String(m).padStart(2, "0")}m` : `${h}h`;
}
