/**
 * Messages between the widget's front end and `FlowWidget` in the kernel
 * (anywidget custom messages). Python names the same shapes in widget.py.
 */
import type { StateName } from "../dag/types";

export type Action = "run" | "cancel" | "rerun_failed";

export type OutgoingMessage =
  | { type: Action }
  | { type: "run_to"; slug: string }
  | { type: "detail"; slug: string };

export interface LogLine {
  timestamp: number;
  level: string;
  message: string;
}

export interface DetailMessage {
  type: "detail";
  slug: string;
  state?: StateName | null;
  message?: string;
  attempt?: number;
  logs?: LogLine[];
  inputs?: string[];
  outputs?: string[];
  /** The task's figures of its last run, base64 PNG. */
  figures?: string[];
}

export interface ErrorMessage {
  type: "error";
  message: string;
}

export type IncomingMessage = DetailMessage | ErrorMessage;

export function parseIncoming(raw: unknown): IncomingMessage | null {
  if (!raw || typeof raw !== "object") return null;
  const msg = raw as { type?: unknown; slug?: unknown; message?: unknown };
  if (msg.type === "detail" && typeof msg.slug === "string") return raw as DetailMessage;
  if (msg.type === "error") return { type: "error", message: String(msg.message ?? "unknown error") };
  return null;
}
