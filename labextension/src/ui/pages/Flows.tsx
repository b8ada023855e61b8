/** Every flow: latest version, schedule on/off, labels and its latest runs as a colour strip. */
import { useRef } from "preact/hooks";
import { Empty, ErrorBox, Labels, Link, Loading, Table } from "../components/common";
import { RunStrip } from "../components/RunStrip";
import { ScheduleToggle } from "../components/ScheduleToggle";
import { formatTime } from "../format";
import { useLiveQuery, useQuery, useTitle } from "../hooks";
import { FLOWS, type FlowsData, RECENT_RUNS, type RecentRunsData } from "../queries";

export function FlowsPage() {
  useTitle("Flows");
  const flows = useLiveQuery<FlowsData>(FLOWS, {}, "flows");
  const ids = flows.data?.flows.map((f) => f.id) ?? [];
  // Reloaded whenever the flows query answers again (the feed reloads that one).
  const answers = useRef<{ data: FlowsData | null; n: number }>({ data: null, n: 0 });
  if (answers.current.data !== flows.data) answers.current = { data: flows.data, n: answers.current.n + 1 };
  const recent = useQuery<RecentRunsData>(RECENT_RUNS, { ids }, `${ids.join(",")}|${answers.current.n}`);
  if (!flows.data) return flows.error ? <ErrorBox error={flows.error} /> : <Loading what="Loading flows" />;
  const strips = new Map(recent.data?.recentRuns.map((r) => [r.flowId, r.runs]) ?? []);
  return (
    <div class="ui-page">
      <h1>Flows</h1>
      {flows.data.flows.length === 0 ? (
        <Empty>
          No flow is registered yet. Register a notebook's flow with <code>nbflow register notebook.ipynb</code>.
        </Empty>
      ) : (
        <section class="ui-card" aria-label="Every flow">
        <Table label="Flows" columns={["Flow", "Version", "Schedule", "Labels", "Latest runs"]} extraClass="ui-flows">
          {flows.data.flows.map((f) => (
            <FlowRow key={f.id} flow={f} runs={strips.get(f.id) ?? []} onChanged={flows.reload} />
          ))}
        </Table>
        </section>
      )}
    </div>
  );
}

interface FlowRowProps {
  flow: FlowsData["flows"][number];
  runs: RecentRunsData["recentRuns"][number]["runs"];
  onChanged: () => void;
}

function FlowRow({ flow: f, runs, onChanged }: FlowRowProps) {
  return (
    <tr data-flow={f.name}>
      <td>
        <Link to={{ page: "flow", name: f.name }} class="ui-strong">
          {f.name}
        </Link>
      </td>
      <td title={f.latestVersion ? `registered ${formatTime(f.latestVersion.created)}` : ""}>
        v{f.latestVersion?.version ?? "?"}
        <span class="ui-muted">
          {" "}
          ({f.versions.length} version{f.versions.length === 1 ? "" : "s"})
        </span>
      </td>
      <td>
        <ScheduleToggle
          flowId={f.id}
          flowName={f.name}
          active={f.scheduleActive}
          schedule={f.latestVersion?.schedule ?? null}
          onChanged={onChanged}
        />
      </td>
      <td>
        <Labels labels={f.latestVersion?.labels ?? []} />
      </td>
      <td>
        <RunStrip runs={runs} flow={f.name} />
      </td>
    </tr>
  );
}
