/**
 * The dashboard: runs by state over the last day, upcoming runs, failing
 * flows, agents, and a warning for scheduled runs no online agent can take.
 * The feed reloads it when runs change; agents' heartbeats do not go through
 * the feed, so their list also refreshes every 30 s.
 */
import { useEffect } from "preact/hooks";
import { STATE_NAMES } from "../../dag/states";
import { AgentTable } from "../components/AgentTable";
import { Card, Empty, ErrorBox, Labels, Link, Loading, StateBadge, Table } from "../components/common";
import { formatTime, relativeTime } from "../format";
import { useLiveQuery, useNow, useTitle } from "../hooks";
import { DASHBOARD, type DashboardData, type StateCount } from "../queries";

const HOURS = 24;
const BUCKETS = 24;

export function DashboardPage() {
  useTitle("Dashboard");
  const q = useLiveQuery<DashboardData>(DASHBOARD, { hours: HOURS, buckets: BUCKETS }, "dashboard");
  const now = useNow(5000);
  useEffect(() => {
    const id = setInterval(q.reload, 30_000);
    return () => clearInterval(id);
  }, [q.reload]);
  if (!q.data) return q.error ? <ErrorBox error={q.error} /> : <Loading what="Loading the dashboard" />;
  const d = q.data.dashboard;
  return (
    <div class="ui-page">
      <h1>Dashboard</h1>
      {q.error && <ErrorBox error={q.error} title="Could not refresh" />}
      <Stranded data={d} />
      <div class="ui-grid">
        <RunsByState data={d} />
        <Upcoming runs={d.upcoming} now={now} />
        <Failing flows={d.failingFlows} now={now} />
        <Card title="Agents" actions={<Link to={{ page: "agents" }}>all agents</Link>}>
          <AgentTable agents={d.agents} now={now} />
        </Card>
      </div>
    </div>
  );
}

function RunsByState({ data }: { data: DashboardData["dashboard"] }) {
  const total = data.counts.reduce((n, c) => n + c.count, 0);
  return (
    <Card title={`Runs by state, last ${HOURS} hours`} class="ui-wide">
      {total === 0 ? (
        <Empty>No runs in the last {HOURS} hours.</Empty>
      ) : (
        <>
          <ul class="ui-counts" aria-label="Runs by state">
            {sortCounts(data.counts).map((c) => (
              <li key={c.state} data-state={c.state}>
                <StateBadge state={c.state} /> <strong>{c.count}</strong>
              </li>
            ))}
          </ul>
          <Histogram buckets={data.buckets} />
          <div class="ui-hist-axis" aria-hidden="true">
            <span>{HOURS} h ago</span>
            <span>{HOURS / 2} h ago</span>
            <span>now</span>
          </div>
        </>
      )}
    </Card>
  );
}

function Upcoming({ runs, now }: { runs: DashboardData["dashboard"]["upcoming"]; now: number }) {
  return (
    <Card title="Upcoming runs">
      {runs.length === 0 ? (
        <Empty>No scheduled runs ahead.</Empty>
      ) : (
        <Table label="Upcoming runs" columns={["Flow", "Starts", "Labels"]}>
          {runs.map((r) => (
            <tr key={r.id} data-run={r.id}>
              <td>
                <Link to={{ page: "run", id: r.id }}>{r.flow?.name}</Link>
              </td>
              <td title={formatTime(r.scheduledStartTime)}>{relativeTime(r.scheduledStartTime, now)}</td>
              <td>
                <Labels labels={r.labels} empty="" />
              </td>
            </tr>
          ))}
        </Table>
      )}
    </Card>
  );
}

function Failing({ flows, now }: { flows: DashboardData["dashboard"]["failingFlows"]; now: number }) {
  return (
    <Card title="Failing flows">
      {flows.length === 0 ? (
        <Empty>No failed runs in the last {HOURS} hours.</Empty>
      ) : (
        <Table label="Failing flows" columns={["Flow", "Failed", "Last failure"]}>
          {flows.map((f) => (
            <tr key={f.flow.name}>
              <td>
                <Link to={{ page: "flow", name: f.flow.name }} query={{ state: "Failed" }}>
                  {f.flow.name}
                </Link>
              </td>
              <td>
                {f.failed} of {f.runs}
              </td>
              <td title={formatTime(f.lastFailure)}>{relativeTime(f.lastFailure, now)}</td>
            </tr>
          ))}
        </Table>
      )}
    </Card>
  );
}

function Stranded({ data }: { data: DashboardData["dashboard"] }) {
  if (!data.stranded.length) return null;
  const online = data.agents.some((a) => a.online);
  return (
    <div class="ui-warning" role="alert" data-testid="stranded">
      <strong>{online ? "Scheduled runs no agent can take" : "No agent is online"}</strong>
      <ul>
        {data.stranded.map((s) => (
          <li key={s.labels.join(",")}>
            {s.count} scheduled run{s.count === 1 ? "" : "s"} of {s.flows.join(", ")}{" "}
            {s.labels.length ? (
              <>
                need the label{s.labels.length === 1 ? "" : "s"} <Labels labels={s.labels} />, which no online agent has.
              </>
            ) : (
              <>need any agent.</>
            )}{" "}
            Next due {formatTime(s.nextStart)}. Start an agent with{" "}
            <code>nbflow agent start --labels {s.labels.join(",") || "..."}</code>.
          </li>
        ))}
      </ul>
    </div>
  );
}

const sortCounts = (counts: readonly StateCount[]): StateCount[] =>
  [...counts].sort((a, b) => STATE_NAMES.indexOf(a.state as never) - STATE_NAMES.indexOf(b.state as never));

function Histogram({ buckets }: { buckets: DashboardData["dashboard"]["buckets"] }) {
  const max = Math.max(1, ...buckets.map((b) => b.counts.reduce((n, c) => n + c.count, 0)));
  const width = 100 / buckets.length;
  return (
    <svg class="ui-histogram" viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-label="Runs per hour by state">
      {buckets.map((b, i) => {
        let y = 40;
        return (
          <g key={b.start}>
            {sortCounts(b.counts).map((c) => {
              const h = (c.count / max) * 38;
              y -= h;
              return (
                <rect
                  key={c.state}
                  class="nbflow-stateful ui-hist-bar"
                  data-state={c.state}
                  x={i * width + 0.15 * width}
                  y={y}
                  width={width * 0.7}
                  height={h}
                >
                  <title>{`${formatTime(b.start).slice(11, 16)}: ${c.count} ${c.state}`}</title>
                </rect>
              );
            })}
          </g>
        );
      })}
    </svg>
  );
}
