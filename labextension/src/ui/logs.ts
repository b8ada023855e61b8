/**
 * Log lines of one run: deduplicated (a line loaded from the API and the same
 * line from the live feed are one), filtered by minimum level, task and text.
 */
import { LOG_LEVELS } from "../dag/record";

/** Log levels in order of severity (generated from the Python run record). */
export const LEVELS = LOG_LEVELS;
export type Level = (typeof LEVELS)[number];

export interface LogLine {
  seq: number | null;
  task: string | null;
  level: string;
  message: string;
  timestamp: number;
  /** Lower-case message, made once for searches. */
  lower: string;
  rank: number;
}

export interface RawLog {
  seq?: number | null;
  task?: string | null;
  level?: string;
  message?: string;
  timestamp?: number;
}

export const levelRank = (level: string): number => {
  const i = (LEVELS as readonly string[]).indexOf(level.toUpperCase());
  return i < 0 ? 1 : i;
};

export function makeLine(raw: RawLog): LogLine {
  const message = raw.message ?? "";
  const level = (raw.level ?? "INFO").toUpperCase();
  return {
    seq: typeof raw.seq === "number" ? raw.seq : null,
    task: raw.task ?? null,
    level,
    message,
    timestamp: raw.timestamp ?? 0,
    lower: message.toLowerCase(),
    rank: levelRank(level),
  };
}

const contentKey = (l: LogLine): string => `${l.timestamp}|${l.task ?? ""}|${l.message}`;

export class LogStore {
  readonly lines: LogLine[] = [];
  version = 0;
  private readonly keys = new Set<string>();

  /** Append lines not seen before; returns how many were new. */
  add(raws: readonly RawLog[]): number {
    let added = 0;
    for (const raw of raws) {
      const line = makeLine(raw);
      const byContent = contentKey(line);
      const bySeq = line.seq !== null ? `#${line.seq}` : null;
      if (this.keys.has(byContent) || (bySeq !== null && this.keys.has(bySeq))) continue;
      this.keys.add(byContent);
      if (bySeq !== null) this.keys.add(bySeq);
      this.lines.push(line);
      added++;
    }
    if (added) this.version++;
    return added;
  }
}

export interface LogFilter {
  minLevel: Level;
  search: string;
  task: string | null;
}

export const noFilter: LogFilter = { minLevel: "DEBUG", search: "", task: null };

export const isLevel = (value: string | null | undefined): value is Level =>
  !!value && (LEVELS as readonly string[]).includes(value);

export function filterLogs(lines: readonly LogLine[], filter: LogFilter): LogLine[] {
  const floor = levelRank(filter.minLevel);
  const needle = filter.search.trim().toLowerCase();
  const task = filter.task;
  if (floor === 0 && !needle && task === null) return lines as LogLine[];
  return lines.filter(
    (l) => l.rank >= floor && (task === null || l.task === task) && (!needle || l.lower.includes(needle)),
  );
}

/** Where the search text occurs in a message: [before, match, after] parts for highlighting. */
export function highlight(message: string, search: string): string[] {
  const needle = search.trim().toLowerCase();
  if (!needle) return [message];
  const at = message.toLowerCase().indexOf(needle);
  if (at < 0) return [message];
  return [message.slice(0, at), message.slice(at, at + needle.length), message.slice(at + needle.length)];
}

/** One line for a list row: a traceback shows its last line (the exception), other text its first. */
export function summaryLine(message: string): string {
  const lines = message.split("\n");
  if (lines.length === 1) return message;
  const first = lines[0] ?? "";
  if (first.startsWith("Traceback")) {
    const last = [...lines].reverse().find((l) => l.trim()) ?? first;
    return `${last.trim()} (traceback, ${lines.length} lines)`;
  }
  return `${first} …`;
}
