/**
 * The panel a node click opens: state, last state message (the error of a
 * failure), inputs and outputs by name, logs, and "run up to here". Local
 * state shows at once; the kernel's answer to `{type: "detail"}` fills the rest.
 */
import { stateLabel } from "../dag/states";
import { formatDuration, taskDuration } from "../dag/summary";
import { htmlEl } from "../dag/svg";
import type { DisplayState, TaskRunState } from "../dag/types";
import type { DetailMessage, LogLine } from "./protocol";

/** Logs arrive whole from the kernel; a runaway task must not bury the page. */
const MAX_LOG_LINES = 500;
/** Base64 PNG only: anything else the kernel sent is not drawn. */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface DetailCallbacks {
  onRunTo: (slug: string) => void;
  onClose: () => void;
}

export class DetailPanel {
  readonly el: HTMLElement;
  private slug: string | null = null;
  private readonly title: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly meta: HTMLElement;
  private readonly message: HTMLElement;
  private readonly inputs: HTMLElement;
  private readonly outputs: HTMLElement;
  private readonly logs: HTMLElement;
  private readonly figures: HTMLElement;
  private readonly doc: Document;

  constructor(doc: Document, callbacks: DetailCallbacks) {
    this.doc = doc;
    this.el = htmlEl(doc, "aside", "nbflow-detail");
    this.el.hidden = true;
    const header = htmlEl(doc, "div", "nbflow-detail-header");
    this.title = htmlEl(doc, "h3", "nbflow-detail-title");
    const close = htmlEl(doc, "button", "nbflow-detail-close", "\u00d7");
    close.type = "button";
    close.dataset.action = "close-detail";
    close.title = "Close";
    close.addEventListener("click", () => callbacks.onClose());
    header.append(this.title, close);

    const status = htmlEl(doc, "div", "nbflow-detail-status");
    this.badge = htmlEl(doc, "span", "nbflow-badge");
    this.meta = htmlEl(doc, "span", "nbflow-detail-meta");
    status.append(this.badge, this.meta);

    this.message = htmlEl(doc, "pre", "nbflow-detail-message");
    this.inputs = htmlEl(doc, "span", "nbflow-detail-inputs");
    this.outputs = htmlEl(doc, "span", "nbflow-detail-outputs");
    const io = htmlEl(doc, "dl", "nbflow-detail-io");
    io.append(htmlEl(doc, "dt", "", "inputs"), wrap(doc, this.inputs), htmlEl(doc, "dt", "", "outputs"), wrap(doc, this.outputs));

    const runTo = htmlEl(doc, "button", "nbflow-button", "\u25b6 Run up to here");
    runTo.type = "button";
    runTo.dataset.action = "run-to";
    runTo.title = "Run this task and everything it depends on";
    runTo.addEventListener("click", () => {
      if (this.slug !== null) callbacks.onRunTo(this.slug);
    });

    this.logs = htmlEl(doc, "div", "nbflow-logs");
    this.logs.setAttribute("role", "log");
    this.figures = htmlEl(doc, "div", "nbflow-figures");
    this.figures.hidden = true;
    this.el.append(header, status, this.message, io, runTo, this.figures, htmlEl(doc, "h4", "", "Logs"), this.logs);
  }

  get current(): string | null {
    return this.slug;
  }

  open(slug: string, name: string): void {
    const changed = slug !== this.slug;
    this.slug = slug;
    this.el.hidden = false;
    this.el.dataset.task = slug;
    this.title.textContent = name;
    this.title.title = slug;
    if (changed) {
      this.message.textContent = "";
      this.inputs.textContent = "\u2026";
      this.outputs.textContent = "\u2026";
      this.setLogs(null);
      this.setFigures([]);
    }
  }

  close(): void {
    this.slug = null;
    this.el.hidden = true;
    delete this.el.dataset.task;
  }

  /** Refresh what the front end knows by itself (state, attempt, duration). */
  showLocal(entry: TaskRunState | undefined, fallback: DisplayState, nowSeconds: number): void {
    const state: DisplayState = entry?.state ?? fallback;
    this.badge.dataset.state = state;
    this.badge.textContent = stateLabel(state);
    const meta: string[] = [];
    if (entry && entry.attempt > 1) meta.push(`attempt ${entry.attempt}`);
    const duration = formatDuration(taskDuration(entry, nowSeconds));
    if (duration) meta.push(duration);
    this.meta.textContent = meta.join(" \u00b7 ");
    if (entry) this.setMessage(entry.message);
  }

  fill(detail: DetailMessage): void {
    if (detail.slug !== this.slug) return;
    // An empty answer (the kernel's record may lag the synced state) keeps what the snapshot said.
    if (typeof detail.message === "string" && detail.message) this.setMessage(detail.message);
    this.inputs.textContent = names(detail.inputs);
    this.outputs.textContent = names(detail.outputs);
    this.setLogs(detail.logs ?? []);
    this.setFigures(detail.figures ?? []);
  }

  /** The task's figures (PNG images of its last run), under a heading. */
  private setFigures(figures: string[]): void {
    const images = figures.filter((png) => typeof png === "string" && BASE64.test(png));
    this.figures.hidden = images.length === 0;
    const frag = this.doc.createDocumentFragment();
    if (images.length) frag.append(htmlEl(this.doc, "h4", "", images.length === 1 ? "Figure" : `Figures (${images.length})`));
    images.forEach((png, index) => {
      const img = this.doc.createElement("img");
      img.className = "nbflow-figure";
      img.alt = `figure ${index + 1} of ${this.slug ?? "the task"}`;
      img.src = `data:image/png;base64,${png}`;
      frag.append(img);
    });
    this.figures.replaceChildren(frag);
  }

  private setMessage(text: string): void {
    if (this.message.textContent !== text) this.message.textContent = text;
    this.message.classList.toggle("nbflow-empty", text === "");
  }

  private setLogs(lines: LogLine[] | null): void {
    if (lines === null) {
      this.logs.replaceChildren(htmlEl(this.doc, "div", "nbflow-log-empty", "loading\u2026"));
      return;
    }
    if (lines.length === 0) {
      this.logs.replaceChildren(htmlEl(this.doc, "div", "nbflow-log-empty", "no logs"));
      return;
    }
    const shown = lines.slice(-MAX_LOG_LINES);
    const frag = this.doc.createDocumentFragment();
    if (shown.length < lines.length) {
      frag.append(htmlEl(this.doc, "div", "nbflow-log-empty", `${lines.length - shown.length} earlier lines not shown`));
    }
    for (const line of shown) {
      const row = htmlEl(this.doc, "div", "nbflow-log");
      row.dataset.level = line.level;
      row.append(
        htmlEl(this.doc, "span", "nbflow-log-time", clock(line.timestamp)),
        htmlEl(this.doc, "span", "nbflow-log-level", line.level),
        htmlEl(this.doc, "span", "nbflow-log-message", line.message),
      );
      frag.append(row);
    }
    this.logs.replaceChildren(frag);
    this.logs.scrollTop = this.logs.scrollHeight;
  }
}

const wrap = (doc: Document, child: HTMLElement): HTMLElement => {
  const dd = doc.createElement("dd");
  dd.append(child);
  return dd;
};

const names = (list: string[] | undefined): string => (list && list.length ? list.join(", ") : "\u2014");

/** HH:MM:SS in the viewer's time zone; the date is noise inside one run. */
function clock(epochSeconds: number): string {
  if (typeof epochSeconds !== "number" || !Number.isFinite(epochSeconds)) return "";
  const d = new Date(epochSeconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}
