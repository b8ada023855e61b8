/**
 * Messages on the `nbflow.cells` comm between this extension and the kernel
 * (`nbflow/kernel/cellcomm.py` names the same shapes).
 */
import type { StateName } from "../dag/types";

export const COMM_TARGET = "nbflow.cells";

/** What one task cell's badge shows (`nbflow/kernel/cellstate.py`). */
export interface Badge {
  task: string;
  state: StateName | null;
  attempt: number;
  duration: number | null;
  message: string;
  /** Why the task's outputs may be out of date, or "". */
  stale: string;
  /** Failed tasks upstream of this one. */
  upstream_failed: string[];
}

export interface LogLine {
  timestamp: number;
  level: string;
  message: string;
}

export interface Detail {
  task: string;
  state: StateName | null;
  message: string;
  attempt: number;
  duration: number | null;
  logs: LogLine[];
}

export type Incoming =
  | { type: "states"; cells: Record<string, Badge> }
  | ({ type: "detail" } & Detail)
  | { type: "notice"; message: string };

export type CellAction = "run_to" | "rerun_from";

export type Outgoing =
  | { type: "order"; cells: string[] }
  | { type: "detail"; task: string }
  | { type: "action"; action: CellAction; task: string };

/** A message from the kernel, or null when it is not one this extension knows. */
export function parseIncoming(raw: unknown): Incoming | null {
  if (!raw || typeof raw !== "object") return null;
  const msg = raw as { type?: unknown; cells?: unknown; task?: unknown; message?: unknown };
  if (msg.type === "states" && msg.cells && typeof msg.cells === "object") return raw as Incoming;
  if (msg.type === "detail" && typeof msg.task === "string") return raw as Incoming;
  if (msg.type === "notice") return { type: "notice", message: String(msg.message ?? "") };
  return null;
}

/** True when a notebook's cells load nbflow or define tasks (it is worth asking its kernel). */
export function mentionsNbflow(sources: readonly string[]): boolean {
  // A cell magic is on a cell's first line; %load_ext may be on any line.
  return sources.some((s) => /^\s*%%(task|shell_task)\b/.test(s) || /%load_ext\s+nbflow\b/.test(s));
}
