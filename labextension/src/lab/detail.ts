/**
 * The panel a badge opens under its cell: the task's state, its message (the
 * error of a failed task) and its log lines, with the cell's actions.
 */
import { stateLabel } from "../dag/states";
import { formatDuration } from "./badge";
import type { CellAction, Detail } from "./protocol";

export interface DetailHandlers {
  close(): void;
  action(action: CellAction): void;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Draw `detail` into `el` (replacing what was there). */
export function renderDetail(el: HTMLElement, detail: Detail, handlers: DetailHandlers): void {
  el.className = "nbflow-cell-detail";
  el.dataset.task = detail.task;
  el.dataset.state = detail.state ?? "NotRun";
  el.replaceChildren();

  const head = element("div", "nbflow-cell-detail-head");
  const state = detail.state ? stateLabel(detail.state) : "not run yet";
  const time = formatDuration(detail.duration);
  const attempt = detail.attempt > 1 ? `, attempt ${detail.attempt}` : "";
  head.append(element("strong", "", `task ${detail.task}`), ` ${state}${time ? ` in ${time}` : ""}${attempt}`);
  const close = element("button", "nbflow-cell-detail-close", "×");
  close.title = "Close";
  close.addEventListener("click", () => handlers.close());
  head.append(close);
  el.append(head);

  if (detail.message) el.append(element("div", "nbflow-cell-detail-message", detail.message));
  const { error, rest } = splitError(detail);
  if (error) el.append(element("pre", "nbflow-cell-detail-error", error));
  if (rest.length > 0 || !error) {
    const logs = element("pre", "nbflow-cell-detail-logs");
    logs.textContent = rest.length ? rest.map((l) => `${l.level.padEnd(7)} ${l.message}`).join("\n") : "(no log lines)";
    el.append(logs);
  }

  const actions = element("div", "nbflow-cell-detail-actions");
  const buttons: [CellAction, string][] = [
    ["run_to", "Run flow up to here"],
    ["rerun_from", "Re-run from here"],
  ];
  for (const [action, label] of buttons) {
    const button = element("button", "nbflow-cell-detail-action", label);
    button.dataset.action = action;
    button.addEventListener("click", () => handlers.action(action));
    actions.append(button);
  }
  el.append(actions);
}

/**
 * The task's error (its last ERROR line, usually the traceback) and the other log
 * lines. An error that only repeats the message is not shown twice.
 */
export function splitError(detail: Detail): { error: string; rest: Detail["logs"] } {
  let index = -1;
  detail.logs.forEach((l, i) => {
    if (l.level === "ERROR" || l.level === "CRITICAL") index = i;
  });
  if (index < 0) return { error: "", rest: detail.logs };
  const line = detail.logs[index]!;
  const rest = detail.logs.filter((_, i) => i !== index);
  // A one-line error that ends like the message says nothing the message did not.
  const tail = detail.message.split(": ").pop() ?? "";
  const repeats = !line.message.includes("\n") && tail !== "" && line.message.endsWith(tail);
  return { error: repeats ? "" : line.message, rest };
}
