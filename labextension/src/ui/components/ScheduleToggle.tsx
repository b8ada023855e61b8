/** The schedule on/off switch (hidden for keys that may not change it: the server refuses them too). */
import { useEffect, useState } from "preact/hooks";
import { canManage, useSession } from "../hooks";
import { describeSchedule } from "../params";
import { SET_SCHEDULE } from "../queries";

export interface ScheduleToggleProps {
  flowId: string;
  flowName: string;
  active: boolean;
  schedule: Record<string, unknown> | null;
  onChanged: () => void;
}

export function ScheduleToggle(props: ScheduleToggleProps) {
  const { api, me } = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [active, setActive] = useState(props.active);
  useEffect(() => setActive(props.active), [props.active]);
  if (!props.schedule) return <span class="ui-muted">no schedule</span>;
  const text = describeSchedule(props.schedule);
  if (!canManage(me)) {
    return (
      <span class="ui-schedule" data-active={String(props.active)}>
        {text} · {props.active ? "on" : "off"}
      </span>
    );
  }
  const toggle = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    const next = !active;
    try {
      await api.query(SET_SCHEDULE, { id: props.flowId, active: next });
      setActive(next);
      props.onChanged();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="ui-schedule" data-active={String(active)}>
      <button
        type="button"
        role="switch"
        class="ui-switch"
        aria-checked={active}
        aria-label={`Schedule of ${props.flowName} (${text})`}
        disabled={busy}
        onClick={toggle}
      >
        <span class="ui-switch-knob" aria-hidden="true" />
      </button>
      <span>
        {text} · {active ? "on" : "off"}
      </span>
      {error && (
        <span class="ui-error-text" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}
