/**
 * The data contracts shared with the Python engine (`Flow.structure()`, the
 * run record's wire form in `record.ts`, the widget's `states` trait). Field
 * names follow the Python side exactly; nothing here is frontend-specific.
 */
import type { LogRecordWire, StateName, StateRecordWire } from "./record";

export type { LogRecordWire, StateName, StateRecordWire };

/** What a node shows before any run touched it. Not an engine state. */
export type DisplayState = StateName | "NotRun";

export type TaskKind = "task" | "parameter" | "shell" | "cell";

export interface GraphTask {
  slug: string;
  name: string;
  kind?: TaskKind | string;
  order?: number;
  options?: Record<string, unknown>;
  upstream?: string[];
  defines?: string[];
  uses?: string[];
}

export interface GraphEdge {
  upstream: string;
  downstream: string;
  key: string | null;
}

export interface FlowGraph {
  name: string;
  tasks: GraphTask[];
  edges: GraphEdge[];
  parameters?: { name: string; default?: unknown; required?: boolean }[];
  schedule?: unknown;
}

/**
 * One record of a run as the engine's stream or the server's feed sends it
 * (`StateRecord.to_wire()` / `LogRecord.to_wire()`); the feed adds `position`.
 * Fields the renderer does not need may be missing from hand-made events.
 */
export type EngineEvent = Partial<Omit<StateRecordWire, "kind">> &
  Partial<Omit<LogRecordWire, "kind">> & {
    kind: "state" | "log";
    flow_run_id: string;
    task: string | null;
    timestamp: number;
    position?: number;
  };

export interface TaskRunState {
  state: StateName;
  attempt: number;
  message: string;
  /** Epoch seconds of the first Running of this run, null if it never ran. */
  started: number | null;
  /** Epoch seconds of the finished state, null while not finished. */
  ended: number | null;
  /** A mapped task: how many of its children are in each state. */
  children?: Record<string, number>;
}

export interface FlowRunState {
  flow_run_id: string;
  state: StateName;
  message: string;
  started: number | null;
  ended: number | null;
}

export interface RunSnapshot {
  run: FlowRunState | null;
  tasks: Record<string, TaskRunState>;
}

/** The wire form of a snapshot: the `states` trait omits empty fields. */
export interface CompactSnapshot {
  run?: Partial<FlowRunState> | null;
  tasks?: Record<string, Partial<TaskRunState>>;
}
