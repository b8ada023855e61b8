/**
 * One flow run, live: the DAG (the widget's renderer), a timeline of task
 * attempts, the task table and the logs, with the selected task's details.
 * The data and its live updates come from `useRun`; the selected task, the
 * tab and the log filter are in the URL, so a link shows the same view.
 */
import { isFinished } from "../../dag/states";
import { Card, ErrorBox, Link, Loading } from "../components/common";
import { DagPanel } from "../components/DagPanel";
import { LogPanel } from "../components/LogPanel";
import { RunHeader } from "../components/RunHeader";
import { TaskDetail } from "../components/TaskDetail";
import { TaskTable } from "../components/TaskTable";
import { Timeline } from "../components/Timeline";
import { shortId } from "../format";
import { useNow, useTitle } from "../hooks";
import { type Level, isLevel } from "../logs";
import { setQuery } from "../router";
import { type LoadedRun, useRun } from "../useRun";

const TABS = ["timeline", "tasks", "logs"] as const;
type Tab = (typeof TABS)[number];

export function RunPage({ id, query }: { id: string; query: URLSearchParams }) {
  const { loaded, error, version, setDag } = useRun(id);
  const runState = loaded?.model.snapshot.run?.state ?? loaded?.data.flowRun.state ?? "";
  const active = !!loaded && !isFinished(runState as never);
  const now = useNow(1000, active) / 1000;
  useTitle(loaded ? `${loaded.data.flowRun.flow.name} ${shortId(id)}` : `run ${shortId(id)}`);
  if (!loaded) return error ? <ErrorBox error={error} title={`Run ${id}`} /> : <Loading what="Loading the run" />;
  const { data, model, logs, names } = loaded;
  const selected = query.get("task");
  const select = (slug: string | null): void => setQuery({ task: slug });

  return (
    <div class="ui-page ui-run-page" data-run-state={runState}>
      <nav class="ui-crumbs" aria-label="Breadcrumb">
        <Link to={{ page: "flows" }}>Flows</Link> /{" "}
        <Link to={{ page: "flow", name: data.flowRun.flow.name }}>{data.flowRun.flow.name}</Link> /{" "}
        <span aria-current="page">run {shortId(id)}</span>
      </nav>
      {error && <ErrorBox error={error} title="Could not reload the run" />}
      <RunHeader run={data.flowRun} snapshot={model.snapshot} version={version} now={now} />
      <Card title="Graph" class="ui-run-dag">
        <DagPanel
          key={loaded.generation}
          graph={data.flowRun.flowVersion.structure}
          snapshot={model.snapshot}
          selected={selected}
          onSelect={select}
          onView={setDag}
          progress
          label={`Live graph of run ${shortId(id)}`}
        />
      </Card>
      <div class={`ui-run-bottom${selected ? " ui-with-detail" : ""}`}>
        <RunTabs loaded={loaded} query={query} version={version} now={now} selected={selected} select={select} />
        {selected && (
          <TaskDetail slug={selected} name={names.get(selected) ?? selected} model={model} logs={logs}
            version={version} now={now} onClose={() => select(null)} />
        )}
      </div>
    </div>
  );
}

interface RunTabsProps {
  loaded: LoadedRun;
  query: URLSearchParams;
  version: number;
  now: number;
  selected: string | null;
  select: (slug: string | null) => void;
}

/** Timeline, task table and logs as tabs (the WAI-ARIA tabs pattern). */
function RunTabs({ loaded, query, version, now, selected, select }: RunTabsProps) {
  const { model, logs, order, names } = loaded;
  const tab: Tab = (TABS as readonly string[]).includes(query.get("tab") ?? "") ? (query.get("tab") as Tab) : "logs";
  const level: Level = isLevel(query.get("level")) ? (query.get("level") as Level) : "DEBUG";
  return (
    <section class="ui-card ui-tabs" aria-label="Run details">
      <div role="tablist" aria-label="Views of the run" class="ui-tablist">
        {TABS.map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            id={`tab-${t}`}
            aria-selected={tab === t}
            aria-controls={`panel-${t}`}
            tabIndex={tab === t ? 0 : -1}
            onClick={() => setQuery({ tab: t === "logs" ? null : t })}
            onKeyDown={(e) => tabKeys(e, tab)}
          >
            {t === "timeline" ? "Timeline" : t === "tasks" ? `Tasks (${order.length})` : loaded.logsReady ? `Logs (${logs.lines.length})` : "Logs (loading…)"}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} class="ui-tabpanel">
        {tab === "timeline" && (
          <Timeline order={order} names={names} attempts={model.attempts} now={now} version={version}
            selected={selected} onSelect={select} />
        )}
        {tab === "tasks" && (
          <TaskTable order={order} names={names} snapshot={model.snapshot} version={version} now={now}
            selected={selected} onSelect={select} />
        )}
        {tab === "logs" && (
          <LogPanel store={logs} version={version} minLevel={level} search={query.get("q") ?? ""}
            task={selected} names={names} onClearTask={() => select(null)}
            onFilter={(c) => setQuery({ ...(c.level !== undefined ? { level: c.level === "DEBUG" ? null : c.level } : {}),
              ...(c.q !== undefined ? { q: c.q || null } : {}) })} />
        )}
      </div>
    </section>
  );
}

/** Arrow keys move between tabs (the WAI-ARIA tabs pattern). */
function tabKeys(ev: KeyboardEvent, tab: Tab): void {
  const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
  if (!step) return;
  ev.preventDefault();
  const next = TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length] as Tab;
  setQuery({ tab: next === "logs" ? null : next });
  requestAnimationFrame(() => document.getElementById(`tab-${next}`)?.focus());
}
