/** Graph and event builders shared by the tests. */
import type { CompactSnapshot, EngineEvent, FlowGraph, StateName } from "../src/dag/types";
import fixture from "./fixtures/run-events.json";

export interface RunFixture {
  graph: FlowGraph;
  events: EngineEvent[];
  expected: CompactSnapshot;
  repr: string;
}

/** A fresh copy each time: tests may mutate what they get. */
export const runFixture = (): RunFixture => structuredClone(fixture) as RunFixture;

/** Chains fanning out from and back into join tasks: the shape of typical ETL flows. */
export function pipelineGraph(n: number, name = "pipeline"): FlowGraph {
  const tasks: FlowGraph["tasks"] = [];
  const edges: FlowGraph["edges"] = [];
  const add = (slug: string, upstream: string[]): void => {
    tasks.push({ slug, name: slug, kind: "task", order: tasks.length, upstream });
    for (const u of upstream) edges.push({ upstream: u, downstream: slug, key: `${u}_out` });
  };
  let join: string | null = null;
  let stage = 0;
  while (tasks.length < n) {
    const width = 1 + (stage % 5);
    const heads: string[] = [];
    for (let w = 0; w < width && tasks.length < n; w++) {
      let prev = join;
      for (let c = 0; c < 3 && tasks.length < n; c++) {
        const slug = `s${stage}_b${w}_t${c}`;
        add(slug, prev ? [prev] : []);
        prev = slug;
      }
      if (prev) heads.push(prev);
    }
    if (tasks.length < n) {
      join = `s${stage}_join`;
      add(join, heads);
    }
    stage++;
  }
  return { name, tasks, edges, parameters: [], schedule: null };
}

let seq = 0;
export function stateEvent(task: string | null, state: StateName, extra: Partial<EngineEvent> = {}): EngineEvent {
  return {
    kind: "state",
    flow_run_id: "run-1",
    task_run_id: task ? `tr-${task}` : null,
    task,
    timestamp: 1000 + seq++,
    state,
    previous: null,
    message: "",
    attempt: 0,
    ...extra,
  };
}
