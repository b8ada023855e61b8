/** The shared DAG renderer: everything a page needs to show a flow and its run. */
import "./dag.css";

export { createDagView } from "./view";
export type { DagView, DagViewOptions } from "./view";
export { buildGraphModel, taskInputs, taskOutputs } from "./graph";
export { layoutGraph, LayoutError, FAST_LAYOUT_ABOVE } from "./layout";
export { applyEvents, emptySnapshot, normalizeSnapshot } from "./snapshot";
export { summarize, formatDuration, countsInOrder } from "./summary";
export { STATE_NAMES, STATE_COLORS, isActive, isFailed, isFinished, stateLabel } from "./states";
export { Legend } from "./legend";
export { ProgressView } from "./progress";
export type * from "./types";
