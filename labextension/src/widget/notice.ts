/** A transient message above the graph (errors from the kernel, refused actions). */
import { htmlEl } from "../dag/svg";

const SHOW_MS = 6000;

export class Notice {
  readonly el: HTMLElement;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(doc: Document) {
    this.el = htmlEl(doc, "div", "nbflow-notice");
    this.el.setAttribute("role", "alert");
    this.el.hidden = true;
    this.el.addEventListener("click", () => this.hide());
  }

  show(text: string, kind: "error" | "info" = "error"): void {
    this.el.textContent = text;
    this.el.dataset.kind = kind;
    this.el.hidden = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.hide(), SHOW_MS);
  }

  hide(): void {
    this.el.hidden = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
