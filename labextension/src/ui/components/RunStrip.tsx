/** A flow's latest runs as a strip of state colours, oldest left, each a link to its run. */
import { stateLabel } from "../../dag/states";
import type { DisplayState } from "../../dag/types";
import { formatTime } from "../format";
import { href } from "../router";

export interface StripRun {
  id: string;
  state: string;
  scheduledStartTime: string;
}

export function RunStrip({ runs, flow }: { runs: readonly StripRun[]; flow: string }) {
  if (!runs.length) return <span class="ui-muted">no runs yet</span>;
  const ordered = [...runs].reverse();
  return (
    <span class="ui-strip" role="group" aria-label={`latest runs of ${flow}`}>
      {ordered.map((r) => {
        const text = `${stateLabel(r.state as DisplayState)}, ${formatTime(r.scheduledStartTime)}`;
        return (
          <a
            key={r.id}
            class="ui-strip-cell nbflow-stateful"
            data-state={r.state}
            href={href({ page: "run", id: r.id })}
            title={text}
            aria-label={text}
          />
        );
      })}
    </span>
  );
}
