/** Agents with their labels, last heartbeat and the runs they have in hand. */
import { formatTime, relativeTime } from "../format";
import type { AgentRow } from "../queries";
import { Empty, Labels, Table } from "./common";

export function AgentTable({ agents, now }: { agents: readonly AgentRow[]; now: number }) {
  if (!agents.length) {
    return (
      <Empty>
        No agent has been heard from. Start one with <code>nbflow agent start --key AGENT_KEY</code>.
      </Empty>
    );
  }
  return (
    <Table label="Agents" columns={["Agent", "Labels", "Last heartbeat", "Runs"]}>
      {agents.map((a) => (
        <tr key={a.id} data-agent={a.name}>
          <td class="ui-nowrap">
            <span class={`ui-dot ${a.online ? "ui-online" : "ui-offline"}`} title={a.online ? "online" : "offline"} />
            {a.name} <span class="ui-sr">{a.online ? "online" : "offline"}</span>
          </td>
          <td>
            <Labels labels={a.labels} />
          </td>
          <td title={formatTime(a.lastSeen)}>{relativeTime(a.lastSeen, now)}</td>
          <td title="flow runs this agent is running now">{a.activeRuns}</td>
        </tr>
      ))}
    </Table>
  );
}
