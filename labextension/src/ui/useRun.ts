/**
 * The run page's data: the feed opens first, then the run's history loads
 * (and, at the same time, its logs), then what the feed delivered meanwhile
 * is folded in (RunModel drops what the history already had; log lines wait
 * for the loaded ones so the order holds). From then on every event goes
 * straight to the model, the DAG view and the log store, and the page
 * re-renders at most once per frame.
 */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { DagView } from "../dag/view";
import type { Api } from "./api";
import type { FeedEvent } from "./feed";
import { useFeed, useFrameRefresh, useSession } from "./hooks";
import { LogStore, type RawLog } from "./logs";
import { type LogRowsData, RUN, RUN_LOGS, type RunData } from "./queries";
import { RunModel, historyEvents } from "./runmodel";

const LOG_PAGE = 10_000;
const MAX_LOG_LINES = 200_000;
const FEED_WAIT_MS = 3000;

export interface LoadedRun {
  generation: number;
  data: RunData;
  model: RunModel;
  logs: LogStore;
  logsReady: boolean;
  order: string[];
  names: Map<string, string>;
  /** Log events that came before the loaded lines. */
  waiting: FeedEvent[];
}

export interface RunState {
  loaded: LoadedRun | null;
  error: Error | null;
  /** Changes whenever the model or the logs change: a render key. */
  version: number;
  /** The page's DAG view registers itself here to get live events. */
  setDag: (view: DagView | null) => void;
}

const toRaw = (e: FeedEvent): RawLog => ({
  seq: e.seq ?? null, task: e.task, level: e.level ?? "INFO", message: e.message ?? "", timestamp: e.timestamp,
});

/** Every log line of a run, page by page (10,000 a page). */
export async function fetchLogs(api: Api, id: string): Promise<RawLog[]> {
  const lines: RawLog[] = [];
  for (let after = 0; lines.length < MAX_LOG_LINES; ) {
    const page = (await api.query<LogRowsData>(RUN_LOGS, { id, after, limit: LOG_PAGE })).runLogRows;
    for (const [, seq, task, level, message, timestamp] of page.rows) lines.push({ seq, task, level, message, timestamp });
    if (!page.more) break;
    after = page.lastId;
  }
  return lines;
}

function build(id: string, data: RunData, generation: number): LoadedRun {
  const tasks = data.flowRun.flowVersion.structure.tasks;
  const order = tasks.map((t) => t.slug);
  const model = new RunModel(id, order);
  model.applyStates(historyEvents(id, data.runHistoryRows));
  const names = new Map(tasks.map((t) => [t.slug, t.name]));
  return { generation, data, model, logs: new LogStore(), logsReady: false, order, names, waiting: [] };
}

/** The loaded lines, then the feed's lines that waited for them. */
function addLoadedLines(run: LoadedRun, lines: RawLog[]): void {
  performance.mark("nbflow:logs-loaded");
  run.logs.add(lines);
  run.logsReady = true;
  run.logs.add(run.waiting.splice(0).map(toRaw));
}

/** Fold feed events into a loaded run (and its DAG view); true when something changed. */
function fold(run: LoadedRun, events: readonly FeedEvent[], dag: DagView | null): boolean {
  const accepted = run.model.applyStates(events);
  if (accepted.length) dag?.applyEvents(accepted);
  const lines = events.filter((e) => e.kind === "log");
  let added = 0;
  if (lines.length && run.logsReady) added = run.logs.add(lines.map(toRaw));
  else run.waiting.push(...lines);
  return accepted.length > 0 || added > 0;
}

export function useRun(id: string): RunState {
  const { api } = useSession();
  const [loaded, setLoaded] = useState<LoadedRun | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const current = useRef<LoadedRun | null>(null);
  const pending = useRef<FeedEvent[]>([]);
  const dag = useRef<DagView | null>(null);
  const loading = useRef(false);
  const [version, bump] = useFrameRefresh();

  const ingest = useCallback((events: FeedEvent[]): void => {
    const run = current.current;
    if (!run) pending.current.push(...events);
    else if (fold(run, events, dag.current)) bump();
  }, [bump]);

  const load = useCallback(async (): Promise<void> => {
    if (loading.current) return;
    loading.current = true;
    try {
      const logs = fetchLogs(api, id); // in parallel: the graph shows while the lines load
      const data = await api.query<RunData>(RUN, { id });
      performance.mark("nbflow:run-loaded");
      const run = build(id, data, (current.current?.generation ?? 0) + 1);
      current.current = run;
      ingest(pending.current.splice(0));
      setError(null);
      setLoaded(run);
      addLoadedLines(run, await logs);
      bump();
      (window as unknown as { nbflowRunPage?: unknown }).nbflowRunPage = { ingest, model: run.model, logs: run.logs };
    } catch (err) {
      setError(err as Error);
    } finally {
      loading.current = false;
    }
  }, [api, id, ingest, bump]);

  useFeed(ingest, {
    flowRunId: id,
    onOpen: () => {
      if (!current.current) void load();
    },
    onGap: () => {
      current.current = null;
      void load();
    },
  });
  useEffect(() => {
    // A feed that cannot open (a proxy that buffers streams, say) must not hide the run:
    // after a few seconds the page loads anyway, and updates come when the feed does.
    const fallback = setTimeout(() => current.current || void load(), FEED_WAIT_MS);
    return () => clearTimeout(fallback);
  }, [load]);
  useEffect(() => () => void delete (window as { nbflowRunPage?: unknown }).nbflowRunPage, []);
  const setDag = useCallback((view: DagView | null) => {
    if (view) dag.current = view;
  }, []);
  return { loaded, error, version, setDag };
}
