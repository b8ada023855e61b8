/**
 * nbflow's JupyterLab extension (prebuilt, shipped in the wheel): every `%%task`
 * cell gets a badge with its task's state, and the kernel learns the document order.
 * It works in JupyterLab 4 and Notebook 7, which share the notebook tracker.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import { INotebookTracker, type NotebookPanel } from "@jupyterlab/notebook";

import { NotebookCells } from "./cells";
import css from "./lab.css";

const plugin: JupyterFrontEndPlugin<void> = {
  id: "nbflow:cells",
  description: "Task cell badges and document order for nbflow notebooks.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const style = document.createElement("style");
    style.dataset.nbflow = "cells";
    style.textContent = css;
    document.head.append(style);
    const attach = (panel: NotebookPanel) => void new NotebookCells(panel);
    tracker.forEach(attach);
    tracker.widgetAdded.connect((_sender, panel) => attach(panel));
  },
};

export default plugin;
