/** Agents heard from in the last week. Heartbeats are not in the feed: the list refreshes every 15 s. */
import { useEffect } from "preact/hooks";
import { AgentTable } from "../components/AgentTable";
import { ErrorBox, Loading } from "../components/common";
import { useNow, useQuery, useTitle } from "../hooks";
import { AGENTS, type AgentRow } from "../queries";

export function AgentsPage() {
  useTitle("Agents");
  const q = useQuery<{ agents: AgentRow[] }>(AGENTS, { hours: 24 * 7 }, "agents");
  const now = useNow(5000);
  useEffect(() => {
    const id = setInterval(q.reload, 15_000);
    return () => clearInterval(id);
  }, [q.reload]);
  return (
    <div class="ui-page">
      <h1>Agents</h1>
      <p class="ui-muted">
        Agents heard from in the last 7 days. An agent runs a flow run only if it has every label of the run.
      </p>
      {q.error && <ErrorBox error={q.error} />}
      {q.data ? <AgentTable agents={q.data.agents} now={now} /> : !q.error && <Loading />}
    </div>
  );
}
