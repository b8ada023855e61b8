/**
 * What a task cell's badge says, as pure functions of its `Badge` (unit-tested),
 * and the badge element itself.
 */
import { SUCCESSFUL_STATES } from "../dag/record";
import { isActive, isFailed, isFinished, stateLabel } from "../dag/states";
import type { StateName } from "../dag/types";
import type { Badge } from "./protocol";

/** A duration as a user reads it: 0.42s, 12s, 3m 05s, 1h 02m. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  if (seconds < 10) return `${seconds.toFixed(seconds < 1 ? 2 : 1)}s`;
  if (seconds < 60) return `${Math.round(seconds)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${String(Math.round(seconds % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

const SUCCESSFUL: ReadonlySet<string> = new Set(SUCCESSFUL_STATES);

/** One glyph per group of states, so the badge reads at a glance (colour says the rest). */
export function stateIcon(state: StateName): string {
  if (SUCCESSFUL.has(state)) return "✓";
  if (isFailed(state)) return "✗";
  if (isActive(state)) return "▶";
  if (isFinished(state)) return "■"; // cancelled
  return "…"; // waiting
}

/** The badge's own text: icon and duration, or the state while it has no duration. */
export function badgeText(badge: Badge): string {
  if (badge.state === null) return "○ not run";
  const icon = stateIcon(badge.state);
  const time = isActive(badge.state) ? "" : formatDuration(badge.duration);
  return `${icon} ${time || stateLabel(badge.state)}`;
}

/** The small line under it: the attempt, staleness, a failed upstream ("" when none). */
export function badgeNote(badge: Badge): string {
  const notes: string[] = [];
  if (badge.attempt > 1) notes.push(`try ${badge.attempt}`);
  if (badge.upstream_failed.length > 0) notes.push("upstream ✗");
  else if (badge.stale) notes.push("stale");
  return notes.join(" · ");
}

/** The tooltip: the full sentence. */
export function badgeTitle(badge: Badge): string {
  const parts = [`task ${badge.task}: ${badge.state === null ? "not run yet" : stateLabel(badge.state)}`];
  const time = formatDuration(badge.duration);
  if (time) parts[0] += ` in ${time}`;
  if (badge.attempt > 1) parts[0] += ` (attempt ${badge.attempt})`;
  if (badge.message) parts.push(badge.message);
  if (badge.upstream_failed.length > 0) parts.push(`upstream failed: ${badge.upstream_failed.join(", ")}`);
  if (badge.stale) parts.push(`stale: ${badge.stale}`);
  parts.push("Click for its logs and error.");
  return parts.join("\n");
}

/** The CSS state class: failed states share one look, the rest their own name. */
export function badgeTone(badge: Badge): string {
  if (badge.state === null) return "notrun";
  if (isFailed(badge.state)) return "failed";
  return badge.state.toLowerCase();
}

/** Make or update the badge element for `badge`. */
export function renderBadge(el: HTMLElement, badge: Badge): void {
  el.className = `nbflow-cell-badge nbflow-cell-badge-${badgeTone(badge)}`;
  el.dataset.task = badge.task;
  el.dataset.state = badge.state ?? "NotRun";
  el.dataset.stale = badge.stale ? "true" : "false";
  el.dataset.upstreamFailed = badge.upstream_failed.join(",");
  el.dataset.attempt = String(badge.attempt);
  el.title = badgeTitle(badge);
  el.setAttribute("role", "button");
  el.setAttribute("aria-label", badgeTitle(badge).split("\n")[0] ?? "");
  el.replaceChildren();
  const main = document.createElement("span");
  main.className = "nbflow-cell-badge-main";
  main.textContent = badgeText(badge);
  el.append(main);
  const note = badgeNote(badge);
  if (note) {
    const small = document.createElement("span");
    small.className = "nbflow-cell-badge-note";
    small.textContent = note;
    el.append(small);
  }
}
