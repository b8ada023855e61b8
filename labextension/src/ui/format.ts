/** Dates and durations as the pages print them. */
import { formatDuration } from "../dag/summary";

export { formatDuration };

const toDate = (value: string | number | Date): Date =>
  value instanceof Date ? value : typeof value === "number" ? new Date(value * 1000) : new Date(value);

/** "2024-06-01 14:03:22" in the browser's time zone (ISO-like: sorts and reads well). */
export function formatTime(value: string | number | Date | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const d = toDate(value);
  if (Number.isNaN(d.getTime())) return "—";
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "in 5m", "12s ago": relative to `now` (epoch ms). */
export function relativeTime(value: string | number | Date | null | undefined, now = Date.now()): string {
  if (value === null || value === undefined || value === "") return "—";
  const d = toDate(value).getTime();
  if (Number.isNaN(d)) return "—";
  const seconds = (d - now) / 1000;
  const abs = Math.abs(seconds);
  // Beyond two days, days and hours read better than "217h 14m".
  const text =
    abs >= 2 * 86400
      ? `${Math.floor(abs / 86400)}d ${Math.floor((abs % 86400) / 3600)}h`
      : formatDuration(abs).replace(/\.\ds$/, "s");
  if (Math.abs(seconds) < 1) return "just now";
  return seconds > 0 ? `in ${text}` : `${text} ago`;
}

/** Seconds between two times, or to now while not ended. */
export function durationBetween(
  start: string | number | null | undefined,
  end: string | number | null | undefined,
  now = Date.now(),
): string {
  if (start === null || start === undefined) return "";
  const a = toDate(start).getTime();
  const b = end === null || end === undefined ? now : toDate(end).getTime();
  return formatDuration(Math.max(0, (b - a) / 1000));
}

export const shortId = (id: string): string => id.slice(0, 8);
