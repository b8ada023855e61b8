/** Small pieces every page uses: state badges, labels, messages, links. */
import type { ComponentChildren } from "preact";
import { stateLabel } from "../../dag/states";
import type { DisplayState } from "../../dag/types";
import { ApiError } from "../api";
import { type Route, href } from "../router";

export function StateBadge({ state }: { state: string }) {
  return (
    <span class="nbflow-badge ui-state" data-state={state}>
      {stateLabel(state as DisplayState)}
    </span>
  );
}

export function Labels({ labels, empty = "none" }: { labels: readonly string[]; empty?: string }) {
  if (!labels.length) return <span class="ui-muted">{empty}</span>;
  return (
    <span class="ui-labels">
      {labels.map((l) => (
        <span class="ui-label" key={l}>
          {l}
        </span>
      ))}
    </span>
  );
}

export function ErrorBox({ error, title = "Something went wrong" }: { error: unknown; title?: string }) {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof ApiError && error.code ? ` (${error.code})` : "";
  return (
    <div class="ui-error" role="alert">
      <strong>
        {title}
        {code}
      </strong>
      <p>{message}</p>
    </div>
  );
}

export const Loading = ({ what = "Loading" }: { what?: string }) => (
  <p class="ui-muted ui-loading" role="status">
    {what}…
  </p>
);

export const Empty = ({ children }: { children: ComponentChildren }) => <p class="ui-empty">{children}</p>;

export function Link({
  to,
  query,
  children,
  class: className,
  label,
}: {
  to: Route;
  query?: Record<string, string | null>;
  children: ComponentChildren;
  class?: string;
  label?: string;
}) {
  return (
    <a href={href(to, query)} class={className} aria-label={label}>
      {children}
    </a>
  );
}

export function Card({ title, children, class: className, actions }: {
  title: string;
  children: ComponentChildren;
  class?: string;
  actions?: ComponentChildren;
}) {
  const id = `card-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <section class={`ui-card ${className ?? ""}`} aria-labelledby={id}>
      <header class="ui-card-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** JSON values for parameters: strings unquoted when that is unambiguous. */
export const showValue = (value: unknown): string =>
  typeof value === "string" ? value : JSON.stringify(value) ?? "null";

/** A column heading: its text, or a text kept for screen readers only (an actions column). */
export type Column = string | { hidden: string };

/** Every data table of the UI: one labelled table, a header row of column headings, the rows. */
export function Table({
  label,
  columns,
  extraClass,
  children,
}: {
  label: string;
  columns: readonly Column[];
  extraClass?: string;
  children: ComponentChildren;
}) {
  return (
    <table class={extraClass ? `ui-table ${extraClass}` : "ui-table"} aria-label={label}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th scope="col" key={typeof c === "string" ? c : c.hidden}>
              {typeof c === "string" ? c : <span class="ui-sr">{c.hidden}</span>}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}
