/**
 * One notebook's task cells: badges beside their prompts, the detail shown when a
 * badge is clicked, and the document order sent to the kernel.
 *
 * The kernel opens the `nbflow.cells` comm when nbflow loads (`%load_ext nbflow`);
 * this side registers the target on every kernel the notebook gets, answers with
 * the cells' order, and sends it again whenever cells are added, removed or moved.
 */
import { Notification } from "@jupyterlab/apputils";
import type { Cell } from "@jupyterlab/cells";
import type { NotebookPanel } from "@jupyterlab/notebook";
import type { Kernel, KernelMessage } from "@jupyterlab/services";

import { renderBadge } from "./badge";
import { renderDetail } from "./detail";
import { type Badge, type CellAction, COMM_TARGET, type Detail, type Outgoing, mentionsNbflow, parseIncoming } from "./protocol";

const ORDER_DELAY_MS = 150; // a drag sends one order, not one per intermediate step

export class NotebookCells {
  private comm: Kernel.IComm | null = null;
  private badges: Record<string, Badge> = {};
  private orderTimer: number | undefined;
  private disposed = false;
  /** Cells not rendered yet (a windowed notebook renders them late): drawn again when they are. */
  private readonly awaitingRender = new WeakSet<Cell>();

  constructor(
    private readonly panel: NotebookPanel,
    /** Called when the badges change (the toolbar's commands show on task cells only). */
    private readonly onBadges: () => void = () => {},
  ) {
    const ctx = panel.sessionContext;
    ctx.kernelChanged.connect(this.onKernelChanged, this);
    // The cells must be loaded too: whether the notebook uses nbflow is read from them.
    void Promise.all([ctx.ready, panel.context.ready]).then(() => this.register(ctx.session?.kernel ?? null));
    panel.content.model?.cells.changed.connect(this.onCellsChanged, this);
    panel.content.modelChanged.connect(() => {
      panel.content.model?.cells.changed.connect(this.onCellsChanged, this);
    });
    panel.disposed.connect(() => this.dispose());
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.orderTimer);
    this.comm = null;
  }

  /** Send a message to the kernel (nothing when nbflow is not loaded there). */
  send(message: Outgoing): void {
    if (this.comm && !this.comm.isDisposed) this.comm.send(message as never);
  }

  private onKernelChanged(_: unknown, args: { newValue: Kernel.IKernelConnection | null }): void {
    this.comm = null;
    this.badges = {};
    this.draw();
    this.register(args.newValue);
  }

  private register(kernel: Kernel.IKernelConnection | null): void {
    if (!kernel || this.disposed) return;
    // The kernel opens the comm when nbflow loads ...
    kernel.registerCommTarget(COMM_TARGET, (comm: Kernel.IComm, _msg: KernelMessage.ICommOpenMsg) => this.adopt(comm));
    // ... and a page opened (or reloaded) after that opens its own, when the notebook uses
    // nbflow: a kernel without nbflow loaded just closes it.
    if (mentionsNbflow(this.sources())) {
      const comm = kernel.createComm(COMM_TARGET);
      this.adopt(comm);
      comm.open({ type: "hello" });
    }
  }

  private adopt(comm: Kernel.IComm): void {
    this.comm = comm;
    comm.onMsg = (msg) => this.receive(msg.content.data);
    comm.onClose = () => {
      if (this.comm === comm) this.comm = null;
    };
    this.sendOrder();
  }

  private sources(): string[] {
    const model = this.panel.content.model;
    const out: string[] = [];
    if (model) for (let i = 0; i < model.cells.length; i++) out.push(model.cells.get(i).sharedModel.getSource());
    return out;
  }

  private onCellsChanged(): void {
    window.clearTimeout(this.orderTimer);
    this.orderTimer = window.setTimeout(() => {
      this.sendOrder();
      this.draw(); // a new or moved cell widget gets its badge back
    }, ORDER_DELAY_MS);
  }

  private sendOrder(): void {
    const model = this.panel.content.model;
    if (!model) return;
    const ids: string[] = [];
    for (let i = 0; i < model.cells.length; i++) ids.push(model.cells.get(i).id);
    this.send({ type: "order", cells: ids });
  }

  private receive(raw: unknown): void {
    const msg = parseIncoming(raw);
    if (!msg) return;
    if (msg.type === "states") {
      this.badges = msg.cells;
      this.draw();
      this.onBadges();
    } else if (msg.type === "detail") {
      this.showDetail(msg);
    } else if (msg.type === "notice" && msg.message) {
      Notification.info(msg.message, { autoClose: 10_000 });
      console.info(msg.message);
    }
  }

  /** The task of a cell, when the kernel says it is a task cell. */
  taskOf(cell: Cell | null | undefined): string | null {
    return cell ? (this.badges[cell.model.id]?.task ?? null) : null;
  }

  /** Ask the kernel to run a cell action (run up to here, re-run from here). */
  action(action: CellAction, task: string): void {
    this.send({ type: "action", action, task });
  }

  /**
   * Show the task in the notebook's flow widget: scroll to the widget and select its
   * node (the widget opens its detail). False when the notebook shows no widget.
   */
  showInWidget(task: string): boolean {
    const widgets = this.panel.content.node.querySelectorAll<HTMLElement>(".nbflow-widget");
    const widget = widgets[widgets.length - 1];
    const node = widget?.querySelector<SVGGraphicsElement>(`g.nbflow-node[data-task="${CSS.escape(task)}"]`);
    if (!widget || !node) return false;
    widget.scrollIntoView({ block: "center" });
    // The widget selects on a press and release without movement (its pan/zoom's click).
    const target = node.querySelector("rect") ?? node;
    for (const type of ["pointerdown", "pointerup"]) {
      target.dispatchEvent(new PointerEvent(type, { bubbles: true, button: 0, pointerId: 1, isPrimary: true }));
    }
    return true;
  }

  private cellWidgets(): readonly Cell[] {
    return this.panel.content.widgets;
  }

  /** Put each task cell's badge in place; remove badges of cells that are no task now. */
  private draw(): void {
    for (const cell of this.cellWidgets()) {
      const badge = this.badges[cell.model.id];
      const area = cell.inputArea?.node;
      let el = cell.node.querySelector<HTMLElement>(":scope .nbflow-cell-badge");
      if (badge && !area) {
        // A placeholder cell has no input area until it renders; states that came before
        // that (a reloaded page, a long notebook) must still reach its badge.
        this.redrawWhenRendered(cell);
        continue;
      }
      if (!badge || !area) {
        el?.remove();
        cell.node.classList.remove("nbflow-task-cell");
        continue;
      }
      if (!el) {
        el = document.createElement("div");
        el.tabIndex = 0;
        el.addEventListener("click", (event) => {
          event.stopPropagation();
          this.toggleDetail(cell);
        });
        el.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            this.toggleDetail(cell);
          }
        });
      }
      if (el.parentElement !== area) area.append(el);
      cell.node.classList.add("nbflow-task-cell");
      renderBadge(el, badge);
      // An open detail follows the task's state (a run finishing while it is open).
      const open = cell.node.querySelector<HTMLElement>(":scope .nbflow-cell-detail");
      if (open && open.dataset.state !== (badge.state ?? "NotRun")) this.send({ type: "detail", task: badge.task });
    }
  }

  private redrawWhenRendered(cell: Cell): void {
    if (this.awaitingRender.has(cell)) return;
    this.awaitingRender.add(cell);
    void cell.ready.then(() => {
      this.awaitingRender.delete(cell);
      if (!this.disposed && !cell.isDisposed) this.draw();
    });
  }

  private toggleDetail(cell: Cell): void {
    const open = cell.node.querySelector(":scope .nbflow-cell-detail");
    if (open) {
      open.remove();
      return;
    }
    const badge = this.badges[cell.model.id];
    if (badge) this.send({ type: "detail", task: badge.task });
  }

  private showDetail(detail: Detail): void {
    const cell = this.cellWidgets().find((c) => this.badges[c.model.id]?.task === detail.task);
    if (!cell) return;
    let el = cell.node.querySelector<HTMLElement>(":scope .nbflow-cell-detail");
    if (!el) {
      el = document.createElement("div");
      const wrapper = cell.inputArea?.node.closest(".jp-Cell-inputWrapper") ?? cell.inputArea?.node;
      if (!wrapper) return;
      wrapper.insertAdjacentElement("afterend", el);
    }
    renderDetail(el, detail, {
      close: () => el?.remove(),
      action: (action) => this.send({ type: "action", action, task: detail.task }),
    });
  }
}
