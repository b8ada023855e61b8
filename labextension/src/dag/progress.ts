/** The one-line progress summary: run state, done / running / failed / total, elapsed. */
import { stateLabel } from "./states";
import { htmlEl } from "./svg";
import { type ProgressSummary, formatDuration } from "./summary";

export class ProgressView {
  readonly el: HTMLElement;
  private readonly text: HTMLElement;
  private readonly bar: HTMLElement;
  private readonly failedBar: HTMLElement;
  private readonly cancelledBar: HTMLElement;

  constructor(doc: Document) {
    this.el = htmlEl(doc, "div", "nbflow-summary");
    this.el.setAttribute("role", "status");
    this.text = htmlEl(doc, "span", "nbflow-summary-text");
    const track = htmlEl(doc, "span", "nbflow-progress");
    this.bar = htmlEl(doc, "span", "nbflow-progress-done");
    this.failedBar = htmlEl(doc, "span", "nbflow-progress-failed");
    this.cancelledBar = htmlEl(doc, "span", "nbflow-progress-cancelled");
    track.append(this.bar, this.failedBar, this.cancelledBar);
    this.el.append(this.text, track);
  }

  update(s: ProgressSummary): void {
    const ds = this.el.dataset;
    ds.done = String(s.done);
    ds.running = String(s.running);
    ds.failed = String(s.failed);
    ds.total = String(s.total);
    ds.run = s.runState ?? "";
    ds.runId = s.runId;
    const parts = [
      s.runState ? stateLabel(s.runState) : "not run",
      `${s.done} / ${s.total} done`,
      `${s.running} running`,
      `${s.failed} failed`,
    ];
    if (s.elapsed !== null) parts.push(`elapsed ${formatDuration(s.elapsed)}`);
    const text = parts.join(" \u00b7 ");
    if (this.text.textContent !== text) this.text.textContent = text;
    const total = s.total || 1;
    // Green is what succeeded only: a cancelled run's tasks are not done well.
    this.bar.style.width = `${(100 * (s.done - s.failed - s.cancelled)) / total}%`;
    this.failedBar.style.width = `${(100 * s.failed) / total}%`;
    this.cancelledBar.style.width = `${(100 * s.cancelled) / total}%`;
  }
}
