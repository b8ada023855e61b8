/** Every task of a run: state, attempts, start, duration, message; virtualized; a click selects. */
import type { RunSnapshot } from "../../dag/types";
import { formatDuration, formatTime } from "../format";
import { StateBadge } from "./common";
import { VirtualList } from "./VirtualList";

const ROW = 28;

export interface TaskTableProps {
  order: readonly string[];
  names: ReadonlyMap<string, string>;
  snapshot: RunSnapshot;
  version: number;
  now: number;
  selected: string | null;
  onSelect: (slug: string) => void;
}

export function TaskTable(props: TaskTableProps) {
  const { snapshot, now } = props;
  const header = (
    <div class="ui-tt-row ui-tt-head" role="row">
      <span role="columnheader">Task</span>
      <span role="columnheader">State</span>
      <span role="columnheader">Attempt</span>
      <span role="columnheader">Started</span>
      <span role="columnheader">Duration</span>
      <span role="columnheader">Message</span>
    </div>
  );
  const renderRow = (i: number) => {
    const slug = props.order[i];
    if (slug === undefined) return null;
    const entry = snapshot.tasks[slug];
    const state = entry?.state ?? (snapshot.run ? "Pending" : "NotRun");
    const duration = entry?.started != null ? formatDuration((entry.ended ?? now) - entry.started) : "";
    return (
      <div
        key={slug}
        role="row"
        tabIndex={0}
        class={`ui-tt-row${props.selected === slug ? " ui-selected" : ""}`}
        data-task={slug}
        data-state={state}
        aria-selected={props.selected === slug}
        onClick={() => props.onSelect(slug)}
        onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), props.onSelect(slug))}
      >
        <span role="cell" class="ui-tt-name" title={slug}>
          {props.names.get(slug) ?? slug}
        </span>
        <span role="cell">
          <StateBadge state={state} />
        </span>
        <span role="cell">{entry?.attempt || ""}</span>
        <span role="cell">{entry?.started != null ? formatTime(entry.started).slice(11) : ""}</span>
        <span role="cell">{duration}</span>
        <span role="cell" class="ui-tt-msg" title={entry?.message}>
          {entry?.message ?? ""}
        </span>
      </div>
    );
  };
  return (
    <VirtualList
      count={props.order.length}
      rowHeight={ROW}
      renderRow={renderRow}
      role="table"
      label="Task runs"
      header={header}
      version={props.version}
      class="ui-task-table"
    />
  );
}
