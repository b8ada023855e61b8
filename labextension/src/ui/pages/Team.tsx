/**
 * Running flows as a team: the server's hooks and every delivery they made, tag
 * concurrency limits and who holds their slots, and the secrets' names (never values).
 * Read-only here: `nbflow hooks|limits|secrets` change them. Refreshed every 10 s.
 */
import { useEffect } from "preact/hooks";
import { Card, Empty, ErrorBox, Link, Loading, Table } from "../components/common";
import { formatTime, relativeTime } from "../format";
import { useNow, useQuery, useTitle } from "../hooks";
import { type HookRow, TEAM, type TeamData } from "../queries";

const firesOn = (h: HookRow): string => {
  const runs = h.scope === "task_run" ? "task runs" : "flow runs";
  const flow = h.flowName ? `flow ${h.flowName}` : "every flow";
  const late = h.lateMinutes ? ` (${h.lateMinutes} min)` : "";
  return `${runs} of ${flow} on ${h.states.join(", ")}${late}`;
};

export function TeamPage() {
  useTitle("Team");
  const q = useQuery<TeamData>(TEAM, {}, "team");
  const now = useNow(5000);
  useEffect(() => {
    const id = setInterval(q.reload, 10_000);
    return () => clearInterval(id);
  }, [q.reload]);
  const data = q.data;
  return (
    <div class="ui-page">
      <h1>Team</h1>
      {q.error && <ErrorBox error={q.error} />}
      {!data ? (
        !q.error && <Loading />
      ) : (
        <>
          <Card title="Hooks">
            {data.hooks.length ? (
              <Table label="Hooks" columns={["Hook", "Fires on", "Sends to"]} extraClass="ui-hooks">
                {data.hooks.map((h) => (
                  <tr key={h.id} data-hook={h.name}>
                    <td>{h.name}</td>
                    <td>{firesOn(h)}</td>
                    <td class="ui-mono">
                      {h.kind} {h.target}
                    </td>
                  </tr>
                ))}
              </Table>
            ) : (
              <Empty>
                No hooks. Add one with <code>nbflow hooks add NAME --webhook URL --on Failed</code>.
              </Empty>
            )}
          </Card>
          <Card title="Deliveries">
            {data.hookDeliveries.length ? (
              <Table label="Deliveries" columns={["When", "Hook", "Run", "State", "Delivery", "Last error"]} extraClass="ui-deliveries">
                {data.hookDeliveries.map((d) => (
                  <tr key={d.id} data-delivery={d.status}>
                    <td title={formatTime(d.created)}>{relativeTime(d.created, now)}</td>
                    <td>{d.hookName}</td>
                    <td>
                      {d.flowRunId === "-" ? (
                        "test"
                      ) : (
                        <Link to={{ page: "run", id: d.flowRunId }} class="ui-mono">
                          {d.flowRunId.slice(0, 8)}
                        </Link>
                      )}
                      {d.taskSlug ? ` ${d.taskSlug}` : ""}
                    </td>
                    <td>{d.state}</td>
                    <td>
                      {d.status} ({d.attempts} {d.attempts === 1 ? "attempt" : "attempts"})
                    </td>
                    <td class="ui-muted">{d.lastError}</td>
                  </tr>
                ))}
              </Table>
            ) : (
              <Empty>No deliveries yet.</Empty>
            )}
          </Card>
          <Card title="Concurrency limits">
            {data.concurrencyLimits.length ? (
              <Table label="Concurrency limits" columns={["Limit on", "In use", "Held by"]} extraClass="ui-limits">
                {data.concurrencyLimits.map((l) => (
                  <tr key={l.kind + l.tag} data-tag={l.tag} data-kind={l.kind}>
                    <td>
                      {l.kind} {l.tag}
                    </td>
                    <td>
                      {l.inUse} of {l.limit} {l.kind === "label" ? "flow runs" : "task runs"}
                    </td>
                    <td>
                      {l.holders.map((h) => (
                        <Link key={h.flowRunId + h.taskSlug} to={{ page: "run", id: h.flowRunId }}>
                          {h.taskSlug}{" "}
                        </Link>
                      ))}
                    </td>
                  </tr>
                ))}
              </Table>
            ) : (
              <Empty>
                No limits. <code>nbflow limits set TAG N</code> caps the running tasks with that tag;{" "}
                <code>--label</code> caps the active flow runs with a label.
              </Empty>
            )}
          </Card>
          <Card title="Secrets">
            {data.secrets.length ? (
              <ul class="ui-secrets" aria-label="Secrets">
                {data.secrets.map((s) => (
                  <li key={s.name}>
                    <code>{s.name}</code> <span class="ui-muted">set {relativeTime(s.updated, now)}</span>
                  </li>
                ))}
              </ul>
            ) : (
              <Empty>
                No secrets. <code>nbflow secrets set NAME</code> stores one; tasks read it with{" "}
                <code>nbflow.secret("NAME")</code>.
              </Empty>
            )}
          </Card>
        </>
      )}
    </div>
  );
}
