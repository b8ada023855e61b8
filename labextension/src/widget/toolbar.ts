/** Run / cancel / re-run failed, enabled according to what the run is doing. */
import { isActive } from "../dag/states";
import type { ProgressSummary } from "../dag/summary";
import { htmlEl } from "../dag/svg";
import type { Action } from "./protocol";

const BUTTONS: readonly { action: Action; dom: string; label: string; title: string }[] = [
  { action: "run", dom: "run", label: "\u25b6 Run", title: "Run the whole flow" },
  { action: "cancel", dom: "cancel", label: "\u25a0 Cancel", title: "Cancel the current run" },
  {
    action: "rerun_failed",
    dom: "rerun-failed",
    label: "\u21bb Re-run failed",
    title: "Run the failed tasks again (and what depends on them)",
  },
];


export class Toolbar {
  readonly el: HTMLElement;
  private readonly buttons = new Map<Action, HTMLButtonElement>();

  constructor(doc: Document, onAction: (action: Action) => void) {
    this.el = htmlEl(doc, "div", "nbflow-toolbar");
    this.el.setAttribute("role", "toolbar");
    for (const spec of BUTTONS) {
      const button = htmlEl(doc, "button", "nbflow-button", spec.label);
      button.type = "button";
      button.dataset.action = spec.dom;
      button.title = spec.title;
      button.addEventListener("click", () => onAction(spec.action));
      this.buttons.set(spec.action, button);
      this.el.append(button);
    }
  }

  update(summary: ProgressSummary): void {
    const running = summary.runState !== null && isActive(summary.runState);
    this.setEnabled("run", !running);
    this.setEnabled("cancel", running);
    this.setEnabled("rerun_failed", !running && summary.failed > 0);
  }

  private setEnabled(action: Action, enabled: boolean): void {
    const button = this.buttons.get(action);
    if (button && button.disabled === enabled) button.disabled = !enabled;
  }
}
