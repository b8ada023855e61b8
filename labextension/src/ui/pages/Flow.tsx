/**
 * One flow: its structure (the widget's DAG renderer), versions, schedule,
 * parameters with defaults, the Run form, the next scheduled runs, and its
 * runs with a state filter. `?version=N` shows an older version.
 */
import { useState } from "preact/hooks";
import { Card, Empty, ErrorBox, Labels, Link, Loading, showValue, Table } from "../components/common";
import { DagPanel } from "../components/DagPanel";
import { RunForm } from "../components/RunForm";
import { RunsTable } from "../components/RunsTable";
import { ScheduleToggle } from "../components/ScheduleToggle";
import { formatTime, relativeTime } from "../format";
import { canManage, useLiveQuery, useQuery, useSession, useTitle } from "../hooks";
import { FLOW, FLOW_RUNS, type FlowData, type FlowRunsData, type FlowVersion, type Parameter } from "../queries";
import { setQuery } from "../router";

export function FlowPage({ name, query }: { name: string; query: URLSearchParams }) {
  useTitle(name);
  const { me } = useSession();
  const q = useQuery<FlowData>(FLOW, { name }, name);
  // Turning a schedule off deletes its future runs without a feed event: reload them then.
  const [changes, setChanges] = useState(0);
  if (!q.data) return q.error ? <ErrorBox error={q.error} title={`Flow ${name}`} /> : <Loading what="Loading the flow" />;
  const flow = q.data.flow;
  const versions = [...flow.versions].sort((a, b) => b.version - a.version);
  const wanted = Number(query.get("version"));
  const version = versions.find((v) => v.version === wanted) ?? versions[0];
  if (!version) return <Empty>This flow has no registered version.</Empty>;
  const latest = version === versions[0];
  const onScheduleChanged = (): void => {
    q.reload();
    setChanges((n) => n + 1);
  };
  return (
    <div class="ui-page">
      <nav class="ui-crumbs" aria-label="Breadcrumb">
        <Link to={{ page: "flows" }}>Flows</Link> / <span aria-current="page">{flow.name}</span>
      </nav>
      <FlowHeader flow={flow} versions={versions} version={version} onScheduleChanged={onScheduleChanged} />
      {!latest && <p class="ui-note">An older version: runs start with the latest (v{versions[0]?.version}).</p>}
      <div class="ui-flow-grid">
        <Card title="Structure" class="ui-structure">
          <DagPanel graph={version.structure} label={`Structure of ${flow.name}`} />
        </Card>
        <div class="ui-side">
          <Parameters params={version.parameters} />
          {canManage(me) && latest && (
            <Card title="Run">
              <RunForm key={version.id} flowName={flow.name} version={version} />
            </Card>
          )}
          <NextRuns flowId={flow.id} changes={changes} />
        </div>
      </div>
      <Card title="Runs">
        <RunsTable flowId={flow.id} state={query.get("state")} page={Math.max(0, Number(query.get("page")) || 0)} />
      </Card>
    </div>
  );
}

interface FlowHeaderProps {
  flow: FlowData["flow"];
  versions: FlowVersion[];
  version: FlowVersion;
  onScheduleChanged: () => void;
}

/** Name, version picker (`?version=N`), schedule switch, labels. */
function FlowHeader({ flow, versions, version, onScheduleChanged }: FlowHeaderProps) {
  const pick = (e: Event): void => {
    const v = (e.currentTarget as HTMLSelectElement).value;
    setQuery({ version: v === String(versions[0]?.version) ? null : v });
  };
  return (
    <header class="ui-page-head">
      <h1>{flow.name}</h1>
      <label>
        Version{" "}
        <select value={String(version.version)} onChange={pick}>
          {versions.map((v) => (
            <option key={v.id} value={String(v.version)}>
              v{v.version} · {formatTime(v.created)}
            </option>
          ))}
        </select>
      </label>
      <ScheduleToggle
        flowId={flow.id}
        flowName={flow.name}
        active={flow.scheduleActive}
        schedule={versions[0]?.schedule ?? null}
        onChanged={onScheduleChanged}
      />
      <span>
        labels <Labels labels={version.labels} />
      </span>
    </header>
  );
}

function Parameters({ params }: { params: Parameter[] }) {
  return (
    <Card title="Parameters">
      {params.length === 0 ? (
        <Empty>No parameters.</Empty>
      ) : (
        <Table label="Parameters" columns={["Name", "Default"]}>
          {params.map((p) => (
            <tr key={p.name}>
              <td class="ui-mono">{p.name}</td>
              <td class="ui-mono">{p.required ? <em>required</em> : showValue(p.default)}</td>
            </tr>
          ))}
        </Table>
      )}
    </Card>
  );
}

function NextRuns({ flowId, changes }: { flowId: string; changes: number }) {
  const variables = { flowId, states: ["Scheduled"], limit: 50, offset: 0 };
  // The scheduler's new runs arrive as feed events; `changes` reloads at once after a toggle.
  const q = useLiveQuery<FlowRunsData>(FLOW_RUNS, variables, `next-${flowId}-${changes}`);
  const now = Date.now();
  const upcoming = (q.data?.flowRuns.items ?? [])
    .filter((r) => Date.parse(r.scheduledStartTime) > now)
    .reverse()
    .slice(0, 10);
  return (
    <Card title="Next runs">
      {q.error && <ErrorBox error={q.error} />}
      {upcoming.length === 0 ? (
        <Empty>No scheduled runs ahead.</Empty>
      ) : (
        <ol class="ui-next-runs" aria-label="Next scheduled runs">
          {upcoming.map((r) => (
            <li key={r.id} data-run={r.id}>
              <Link to={{ page: "run", id: r.id }}>{formatTime(r.scheduledStartTime)}</Link>{" "}
              <span class="ui-muted">{relativeTime(r.scheduledStartTime, now)}</span>
            </li>
          ))}
        </ol>
      )}
    </Card>
  );
}
