/** The colour key: one entry per state the graph shows now, with its count (absent states are hidden). */
import { STATE_NAMES, stateLabel } from "./states";
import { htmlEl } from "./svg";
import type { DisplayState, StateName } from "./types";

const LEGEND_STATES: readonly DisplayState[] = ["NotRun", ...STATE_NAMES];

export class Legend {
  readonly el: HTMLElement;
  private readonly counts = new Map<DisplayState, HTMLElement>();

  constructor(doc: Document) {
    this.el = htmlEl(doc, "div", "nbflow-legend");
    this.el.setAttribute("role", "list");
    for (const state of LEGEND_STATES) {
      const item = htmlEl(doc, "span", "nbflow-legend-item");
      item.setAttribute("role", "listitem");
      item.dataset.state = state;
      item.hidden = true; // until a task is in this state
      const count = htmlEl(doc, "span", "nbflow-legend-count");
      item.append(htmlEl(doc, "span", "nbflow-swatch"), doc.createTextNode(stateLabel(state)), count);
      this.counts.set(state, count);
      this.el.append(item);
    }
  }

  setCounts(counts: Partial<Record<StateName, number>>, notRun: number): void {
    for (const [state, el] of this.counts) {
      const n = state === "NotRun" ? notRun : (counts[state] ?? 0);
      const text = n ? String(n) : "";
      if (el.textContent !== text) el.textContent = text;
      const item = el.parentElement;
      if (item && item.hidden !== (n === 0)) item.hidden = n === 0;
    }
  }
}
