/**
 * The Gantt timeline: one row per task that ran (by first start), one bar per
 * attempt coloured by how it ended, drawn in the renderer's SVG style and
 * virtualized like the lists. Clicking a row selects the task.
 */
import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { stateLabel } from "../../dag/states";
import { formatDuration } from "../format";
import type { Attempt } from "../runmodel";
import { type Bar, type Scale, type TimelineRow, bars, ticks, timeBounds, timelineRows, timeScale } from "../timeline";
import { VirtualList } from "./VirtualList";

const ROW = 24;
const NAME_WIDTH = 200;

export interface TimelineProps {
  order: readonly string[];
  names: ReadonlyMap<string, string>;
  attempts: ReadonlyMap<string, readonly Attempt[]>;
  /** Epoch seconds. */
  now: number;
  version: number;
  selected: string | null;
  onSelect: (slug: string) => void;
}

export function Timeline(props: TimelineProps) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = (): void => setWidth(Math.max(120, el.clientWidth - NAME_WIDTH - 44));
    measure();
    const observer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(measure) : null;
    observer?.observe(el);
    return () => observer?.disconnect();
  }, []);
  const rows = useMemo(() => timelineRows(props.order, props.attempts), [props.version, props.order]);
  const [t0, t1] = timeBounds(rows, props.now);
  const scale = timeScale(t0, t1, width);
  const renderRow = (i: number) => {
    const row = rows[i];
    return row ? <Row key={row.slug} row={row} scale={scale} {...props} /> : null;
  };
  return (
    <div class="ui-timeline" ref={box}>
      {rows.length === 0 ? (
        <p class="ui-empty">No task has started yet.</p>
      ) : (
        <VirtualList
          count={rows.length}
          rowHeight={ROW}
          renderRow={renderRow}
          label="Timeline of task runs: one bar per attempt"
          header={<Axis scale={scale} />}
          version={props.version}
          class="ui-tl-list"
        />
      )}
    </div>
  );
}

function Axis({ scale }: { scale: Scale }) {
  const axis = ticks(scale.t0, scale.t1, Math.max(2, Math.floor(scale.width / 90)));
  return (
    <div class="ui-tl-axis" aria-hidden="true">
      <span class="ui-tl-name" />
      <svg width={scale.width} height={18}>
        {axis.map((t) => (
          <g key={t.t} transform={`translate(${scale.x(t.t).toFixed(1)},0)`}>
            <line y1={12} y2={18} class="ui-tl-tick" />
            <text y={10} class="ui-tl-ticklabel">
              {t.label}
            </text>
          </g>
        ))}
      </svg>
    </div>
  );
}

/** One task: its name and a bar per attempt, coloured by how the attempt ended. */
function Row(props: TimelineProps & { row: TimelineRow; scale: Scale }) {
  const { row, scale } = props;
  const name = props.names.get(row.slug) ?? row.slug;
  const rowBars = bars(row, scale, props.now);
  const describe = (b: Bar): string =>
    `attempt ${b.attempt}: ${stateLabel(b.state)}, ${formatDuration(b.end - b.start)}`;
  return (
    <div
      class={`ui-tl-row${props.selected === row.slug ? " ui-selected" : ""}`}
      role="listitem"
      data-task={row.slug}
      data-attempts={row.attempts.length}
      aria-label={`${name}: ${rowBars.map(describe).join("; ")}`}
      onClick={() => props.onSelect(row.slug)}
    >
      <span class="ui-tl-name" title={name}>
        {name}
      </span>
      <svg width={scale.width} height={ROW - 6} aria-hidden="true">
        {rowBars.map((b) => (
          <rect
            key={b.attempt}
            class={`ui-tl-bar nbflow-stateful${b.running ? " ui-tl-running" : ""}`}
            data-state={b.state}
            x={b.x}
            y={2}
            width={b.width}
            height={ROW - 10}
            rx={3}
          >
            <title>{`${name}, ${describe(b)}`}</title>
          </rect>
        ))}
      </svg>
    </div>
  );
}
