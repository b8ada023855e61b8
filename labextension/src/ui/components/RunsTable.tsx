/** A page of flow runs with a state filter; the filter and page are in the URL. */
import { STATE_NAMES } from "../../dag/states";
import { durationBetween, formatTime, relativeTime, shortId } from "../format";
import { useLiveQuery } from "../hooks";
import { FLOW_RUNS, type FlowRunsData } from "../queries";
import { setQuery } from "../router";
import { Empty, ErrorBox, Link, Loading, showValue, StateBadge, Table } from "./common";

const PAGE = 25;

export function RunsTable({ flowId, state, page }: { flowId: string; state: string | null; page: number }) {
  const variables = { flowId, states: state ? [state] : null, limit: PAGE, offset: page * PAGE };
  const q = useLiveQuery<FlowRunsData>(FLOW_RUNS, variables, JSON.stringify(variables), (events) =>
    events.some((e) => e.kind === "state" && (e.task === null || e.task === undefined)),
  );
  const runs = q.data?.flowRuns;
  return (
    <div>
      <div class="ui-toolbar">
        <label>
          State{" "}
          <select
            value={state ?? ""}
            onChange={(e) => setQuery({ state: (e.currentTarget as HTMLSelectElement).value || null, page: null })}
          >
            <option value="">any</option>
            {STATE_NAMES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        {runs && <span class="ui-muted">{runs.total} runs</span>}
      </div>
      {q.error && <ErrorBox error={q.error} />}
      {!runs ? (
        !q.error && <Loading />
      ) : runs.items.length === 0 ? (
        <Empty>No runs{state ? ` in state ${state}` : ""}.</Empty>
      ) : (
        <RunRows runs={runs.items} />
      )}
      {runs && (page > 0 || runs.nextOffset !== null) && <Pager page={page} more={runs.nextOffset !== null} />}
    </div>
  );
}

function RunRows({ runs }: { runs: FlowRunsData["flowRuns"]["items"] }) {
  const now = Date.now();
  return (
    <Table label="Runs" columns={["Run", "State", "Scheduled", "Duration", "Parameters", "Version"]}>
      {runs.map((r) => (
        <tr key={r.id} data-run={r.id} data-state={r.state}>
          <td>
            <Link to={{ page: "run", id: r.id }} class="ui-mono">
              {shortId(r.id)}
            </Link>
          </td>
          <td>
            <StateBadge state={r.state} />
          </td>
          <td title={formatTime(r.scheduledStartTime)}>{relativeTime(r.scheduledStartTime, now)}</td>
          <td>{r.startTime ? durationBetween(r.startTime, r.endTime, now) : ""}</td>
          <td class="ui-params">
            {Object.entries(r.parameters)
              .map(([k, v]) => `${k}=${showValue(v)}`)
              .join(", ")}
          </td>
          <td>v{r.flowVersion.version}</td>
        </tr>
      ))}
    </Table>
  );
}

function Pager({ page, more }: { page: number; more: boolean }) {
  return (
    <nav class="ui-pager" aria-label="Pages of runs">
      <button type="button" disabled={page === 0} onClick={() => setQuery({ page: page > 1 ? String(page - 1) : null })}>
        Newer
      </button>
      <span>page {page + 1}</span>
      <button type="button" disabled={!more} onClick={() => setQuery({ page: String(page + 1) })}>
        Older
      </button>
    </nav>
  );
}
