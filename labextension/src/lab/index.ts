/**
 * nbflow's JupyterLab extension (prebuilt, shipped in the wheel): every `%%task`
 * cell gets a badge with its task's state, the kernel learns the document order,
 * and a task cell's toolbar gets "run up to here", "re-run from here" and "show in
 * the widget". It works in JupyterLab 4 and Notebook 7, which share the notebook tracker.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import { Notification } from "@jupyterlab/apputils";
import { INotebookTracker, type NotebookPanel } from "@jupyterlab/notebook";

import { NotebookCells } from "./cells";
import css from "./lab.css";
import type { CellAction } from "./protocol";

const COMMANDS = {
  runTo: "nbflow:run-to",
  rerunFrom: "nbflow:rerun-from",
  show: "nbflow:show-in-widget",
} as const;

const plugin: JupyterFrontEndPlugin<void> = {
  // Its settings schema (schema/cells.json) puts the commands in the cell toolbar.
  id: "nbflow:cells",
  description: "Task cell badges, toolbar actions and document order for nbflow notebooks.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const style = document.createElement("style");
    style.dataset.nbflow = "cells";
    style.textContent = css;
    document.head.append(style);

    const controllers = new WeakMap<NotebookPanel, NotebookCells>();
    const refresh = (): void => {
      for (const id of Object.values(COMMANDS)) app.commands.notifyCommandChanged(id);
    };
    const attach = (panel: NotebookPanel): void => {
      controllers.set(panel, new NotebookCells(panel, refresh));
    };
    tracker.forEach(attach);
    tracker.widgetAdded.connect((_sender, panel) => attach(panel));
    tracker.activeCellChanged.connect(refresh);

    /** The active cell's controller and task, when it is a task cell. */
    const current = (): { cells: NotebookCells; task: string } | null => {
      const panel = tracker.currentWidget;
      const cells = panel ? controllers.get(panel) : undefined;
      const task = cells?.taskOf(tracker.activeCell) ?? null;
      return cells && task ? { cells, task } : null;
    };
    const action = (id: string, label: string, caption: string, kind: CellAction): void => {
      app.commands.addCommand(id, {
        label,
        caption,
        isVisible: () => current() !== null,
        execute: () => {
          const here = current();
          if (here) here.cells.action(kind, here.task);
        },
      });
    };
    action(COMMANDS.runTo, "▶ to here", "nbflow: run the flow up to this task", "run_to");
    action(COMMANDS.rerunFrom, "↻ from here", "nbflow: run this task and everything after it again", "rerun_from");
    app.commands.addCommand(COMMANDS.show, {
      label: "◈ in flow",
      caption: "nbflow: show this task in the flow widget",
      isVisible: () => current() !== null,
      execute: () => {
        const here = current();
        if (here && !here.cells.showInWidget(here.task)) {
          Notification.info("No flow widget in this notebook yet: run %flow show (or %flow run) to draw one.", {
            autoClose: 8000,
          });
        }
      },
    });
  },
};

export default plugin;
