/** The selected task: its state and message (the error of a failed task), attempts and error logs. */
import { useMemo } from "preact/hooks";
import { isFailed, stateLabel } from "../../dag/states";
import { formatDuration, formatTime } from "../format";
import type { LogStore } from "../logs";
import type { RunModel } from "../runmodel";
import { StateBadge } from "./common";

export interface TaskDetailProps {
  slug: string;
  name: string;
  model: RunModel;
  logs: LogStore;
  version: number;
  now: number;
  onClose: () => void;
}

export function TaskDetail({ slug, name, model, logs, version, now, onClose }: TaskDetailProps) {
  const entry = model.snapshot.tasks[slug];
  const state = entry?.state ?? (model.snapshot.run ? "Pending" : "NotRun");
  const attempts = model.attempts.get(slug) ?? [];
  const errors = useMemo(
    () => logs.lines.filter((l) => l.task === slug && l.rank >= 3),
    [logs, version, slug],
  );
  const taskLines = useMemo(() => logs.lines.reduce((n, l) => n + (l.task === slug ? 1 : 0), 0), [logs, version, slug]);
  return (
    <aside class="ui-card ui-task-detail" aria-labelledby="task-detail-title" data-task={slug} data-state={state}>
      <header class="ui-card-head">
        <h2 id="task-detail-title">{name}</h2>
        <button type="button" class="ui-link-button" onClick={onClose} aria-label="Close the task's details">
          ✕
        </button>
      </header>
      <p>
        <StateBadge state={state} />
        {entry && entry.attempt > 0 ? <span class="ui-muted"> attempt {entry.attempt}</span> : null}
        {entry?.started != null && (
          <span class="ui-muted"> · {formatDuration((entry.ended ?? now) - entry.started)}</span>
        )}
      </p>
      {entry?.message && (
        <pre class={`ui-task-message${isFailed(state) ? " ui-task-error" : ""}`} data-testid="task-message">
          {entry.message}
        </pre>
      )}
      {attempts.length > 0 && (
        <ol class="ui-attempts" aria-label="Attempts">
          {attempts.map((a) => (
            <li key={`${a.attempt}-${a.start}`}>
              attempt {a.attempt}: {stateLabel(a.state)} at {formatTime(a.start).slice(11)}
              {a.end !== null && a.end > a.start ? `, ${formatDuration(a.end - a.start)}` : ""}
            </li>
          ))}
        </ol>
      )}
      <p class="ui-muted">
        {taskLines} log line{taskLines === 1 ? "" : "s"} (shown in Logs while this task is selected)
      </p>
      {errors.length > 0 && (
        <div class="ui-task-errors">
          <h3>Errors</h3>
          {errors.slice(-3).map((l, i) => (
            <pre key={i} class="ui-task-error" data-testid="task-error-log">
              {l.message}
            </pre>
          ))}
        </div>
      )}
    </aside>
  );
}
