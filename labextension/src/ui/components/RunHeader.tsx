/** A run's title, live state, times, parameters, labels, agent, and Cancel / Re-run. */
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { isFinished } from "../../dag/states";
import type { RunSnapshot, StateName } from "../../dag/types";
import { durationBetween, formatTime, shortId } from "../format";
import { canManage, useSession } from "../hooks";
import { CANCEL_RUN, CREATE_RUN, type CreateRunData, type RunData } from "../queries";
import { href, navigate } from "../router";
import { Labels, StateBadge, showValue } from "./common";

export interface RunHeaderProps {
  run: RunData["flowRun"];
  snapshot: RunSnapshot;
  version: number;
  /** Epoch seconds. */
  now: number;
}

export function RunHeader({ run, snapshot, now }: RunHeaderProps) {
  const { me } = useSession();
  const live = snapshot.run;
  const state: StateName = (live?.state ?? run.state) as StateName;
  const message = live?.message ?? run.message;
  const started = live?.started ?? (run.startTime ? Date.parse(run.startTime) / 1000 : null);
  const ended = live ? live.ended : run.endTime ? Date.parse(run.endTime) / 1000 : null;
  return (
    <header class="ui-run-head">
      <div class="ui-page-head">
        <h1>
          {run.flow.name} <span class="ui-muted ui-mono">run {shortId(run.id)}</span>
        </h1>
        <span class="ui-run-state" data-state={state} aria-live="polite">
          <StateBadge state={state} />
        </span>
        {canManage(me) && <RunActions run={run} state={state} />}
      </div>
      <dl class="ui-facts">
        <Fact label="Scheduled">{formatTime(run.scheduledStartTime)}</Fact>
        <Fact label="Started">{started ? formatTime(started) : "—"}</Fact>
        <Fact label="Duration">{started ? durationBetween(started, ended, now * 1000) : "—"}</Fact>
        <Fact label="Version">v{run.flowVersion.version}</Fact>
        <Fact label="Agent" class="ui-mono">
          {run.agentId ? shortId(run.agentId) : "—"}
        </Fact>
        <Fact label="Labels">
          <Labels labels={run.labels} />
        </Fact>
        <Fact label="Parameters" wide class="ui-mono ui-params" testid="run-parameters">
          {Object.keys(run.parameters).length
            ? Object.entries(run.parameters).map(([k, v]) => `${k}=${showValue(v)}`).join(", ")
            : "none"}
        </Fact>
        {message && message.toLowerCase() !== state.toLowerCase() && (
          <Fact label="Message" wide class="ui-run-message">
            {message}
          </Fact>
        )}
      </dl>
    </header>
  );
}

function Fact(props: { label: string; children: ComponentChildren; wide?: boolean; class?: string; testid?: string }) {
  return (
    <div class={props.wide ? "ui-fact-wide" : undefined}>
      <dt>{props.label}</dt>
      <dd class={props.class} data-testid={props.testid}>
        {props.children}
      </dd>
    </div>
  );
}

/** Cancel (while not finished) and Re-run (a new run with the same parameters and labels). */
function RunActions({ run, state }: { run: RunData["flowRun"]; state: StateName }) {
  const { api } = useSession();
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const act = async (what: string, work: () => Promise<void>): Promise<void> => {
    setBusy(what);
    setError(null);
    try {
      await work();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(null);
    }
  };
  const cancel = () => act("cancel", async () => void (await api.query(CANCEL_RUN, { id: run.id })));
  const rerun = () =>
    act("rerun", async () => {
      const input = { flowId: run.flowId, parameters: run.parameters, labels: run.labels };
      const data = await api.query<CreateRunData>(CREATE_RUN, { input });
      navigate(href({ page: "run", id: data.createFlowRun.flowRun.id }));
    });
  return (
    <span class="ui-actions">
      {error && (
        <span class="ui-error-text" role="alert">
          {error}
        </span>
      )}
      {!isFinished(state) && state !== "Cancelling" && (
        <button type="button" class="ui-danger" data-action="cancel-run" disabled={busy !== null} onClick={cancel}>
          {busy === "cancel" ? "Cancelling…" : "Cancel run"}
        </button>
      )}
      <button type="button" data-action="rerun" disabled={busy !== null} onClick={rerun}>
        {busy === "rerun" ? "Starting…" : "Re-run"}
      </button>
    </span>
  );
}
