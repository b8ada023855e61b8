/** Start a run: one field per parameter (defaults filled in), labels, and Run. */
import { useState } from "preact/hooks";
import { useSession } from "../hooks";
import { fieldText, formParameters, parseLabels } from "../params";
import { CREATE_RUN, type CreateRunData, type FlowVersion } from "../queries";
import { href, navigate } from "../router";

export function RunForm({ flowName, version }: { flowName: string; version: FlowVersion }) {
  const { api } = useSession();
  const params = version.parameters;
  const [texts, setTexts] = useState<Record<string, string>>(() =>
    Object.fromEntries(params.map((p) => [p.name, fieldText(p.default)])),
  );
  const [labels, setLabels] = useState("");
  const [errors, setErrors] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);

  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    const { values, errors: problems } = formParameters(params, texts);
    setErrors(problems);
    if (problems.length) return;
    setBusy(true);
    try {
      const extra = parseLabels(labels);
      const input = { flowName, parameters: values, ...(extra.length ? { labels: extra } : {}) };
      const data = await api.query<CreateRunData>(CREATE_RUN, { input });
      navigate(href({ page: "run", id: data.createFlowRun.flowRun.id }));
    } catch (err) {
      setErrors([(err as Error).message]);
      setBusy(false);
    }
  };

  return (
    <form class="ui-run-form" onSubmit={submit} aria-label={`Run ${flowName}`}>
      {params.length === 0 && <p class="ui-muted">This flow has no parameters.</p>}
      {params.map((p) => (
        <Field key={p.name} id={`param-${p.name}`} label={p.name} required={p.required}
          value={texts[p.name] ?? ""} onInput={(v) => setTexts({ ...texts, [p.name]: v })} />
      ))}
      <Field id="run-labels" label="Extra labels" value={labels} onInput={setLabels}
        placeholder={version.labels.length ? `besides ${version.labels.join(", ")}` : "e.g. gpu, eu"}
        help="Comma-separated. Only an agent with all of the run's labels takes it." />
      {errors.length > 0 && (
        <ul class="ui-error-text" role="alert">
          {errors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      )}
      <button type="submit" class="ui-primary" data-action="start-run" disabled={busy}>
        {busy ? "Starting…" : "Run"}
      </button>
    </form>
  );
}

interface FieldProps {
  id: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  required?: boolean | undefined;
  placeholder?: string;
  help?: string;
}

/** A labelled text field (with its help text tied to it for screen readers). */
function Field(props: FieldProps) {
  return (
    <div class="ui-field">
      <label for={props.id}>
        {props.label}
        {props.required ? <span class="ui-required"> (required)</span> : null}
      </label>
      <input
        id={props.id}
        name={props.id}
        value={props.value}
        spellcheck={false}
        placeholder={props.placeholder}
        aria-describedby={props.help ? `${props.id}-help` : undefined}
        onInput={(e) => props.onInput((e.currentTarget as HTMLInputElement).value)}
      />
      {props.help && (
        <small id={`${props.id}-help`} class="ui-muted">
          {props.help}
        </small>
      )}
    </div>
  );
}
