/**
 * A run's logs, streamed live: minimum level, text search and the selected
 * task filter the in-memory lines (10,000 lines filter in a few ms); only the
 * rows in view are drawn. The filter lives in the URL, so a link shares it.
 */
import { useMemo, useState } from "preact/hooks";
import { formatTime } from "../format";
import { LEVELS, type Level, type LogLine, type LogStore, filterLogs, highlight, summaryLine } from "../logs";
import { VirtualList } from "./VirtualList";

const ROW = 20;

export interface LogPanelProps {
  store: LogStore;
  version: number;
  minLevel: Level;
  search: string;
  task: string | null;
  names: ReadonlyMap<string, string>;
  onFilter: (changes: { level?: Level; q?: string }) => void;
  onClearTask: () => void;
}

export function LogPanel(props: LogPanelProps) {
  const { store, minLevel, search, task } = props;
  const [follow, setFollow] = useState(true);
  const shown = useMemo(
    () => filterLogs(store.lines, { minLevel, search, task }),
    [store, props.version, minLevel, search, task],
  );
  const renderRow = (i: number) => {
    const line = shown[i];
    return line ? <LogRow key={i} line={line} search={search} names={props.names} /> : null;
  };
  return (
    <div class="ui-logs">
      <div class="ui-toolbar" role="search">
        <label>
          Minimum level{" "}
          <select
            value={minLevel}
            onChange={(e) => props.onFilter({ level: (e.currentTarget as HTMLSelectElement).value as Level })}
          >
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          Search{" "}
          <input
            type="search"
            value={search}
            placeholder="text in the message"
            onInput={(e) => props.onFilter({ q: (e.currentTarget as HTMLInputElement).value })}
          />
        </label>
        {task !== null && (
          <button type="button" class="ui-chip" onClick={props.onClearTask} aria-label="Show every task's logs">
            task: {props.names.get(task) ?? task} ✕
          </button>
        )}
        <label class="ui-check">
          <input type="checkbox" checked={follow} onChange={() => setFollow(!follow)} /> follow
        </label>
        <span class="ui-muted ui-log-count" aria-live="polite">
          {shown.length.toLocaleString("en-US")} of {store.lines.length.toLocaleString("en-US")} lines
        </span>
      </div>
      <VirtualList
        count={shown.length}
        rowHeight={ROW}
        renderRow={renderRow}
        follow={follow}
        version={`${props.version}|${minLevel}|${search}|${task}`}
        label="Log lines"
        class="ui-log-list"
      />
    </div>
  );
}

/** One line: time, level, task, and the message (a traceback by its exception) with the match marked. */
function LogRow({ line, search, names }: { line: LogLine; search: string; names: ReadonlyMap<string, string> }) {
  const parts = highlight(summaryLine(line.message), search);
  return (
    <div class="ui-log-row" role="listitem" data-level={line.level} title={line.message}>
      <span class="ui-log-time">{formatTime(line.timestamp).slice(11)}</span>
      <span class="ui-log-level">{line.level}</span>
      <span class="ui-log-task">{line.task ? (names.get(line.task) ?? line.task) : "flow"}</span>
      <span class="ui-log-msg">
        {parts.length === 3 ? (
          <>
            {parts[0]}
            <mark>{parts[1]}</mark>
            {parts[2]}
          </>
        ) : (
          parts[0]
        )}
      </span>
    </div>
  );
}
