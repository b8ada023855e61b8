/**
 * A list that draws only the rows in view (plus a few), so 10,000 log lines or
 * 1,000 task rows cost what 40 do. Rows have one fixed height.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

export interface Range {
  start: number;
  end: number;
}

/** Rows [start, end) to draw for a scroll position (pure; tested). */
export function visibleRange(scrollTop: number, height: number, rowHeight: number, count: number, overscan = 8): Range {
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const last = Math.ceil((Math.max(0, scrollTop) + height) / rowHeight);
  return { start: Math.max(0, first - overscan), end: Math.min(count, last + overscan) };
}

export interface VirtualListProps {
  count: number;
  rowHeight: number;
  renderRow: (index: number) => ComponentChildren;
  /** Stay at the bottom as rows arrive while the user is there (logs). */
  follow?: boolean;
  class?: string;
  label: string;
  role?: string;
  /** Changes whenever rows change without the count changing (filters). */
  version?: unknown;
  header?: ComponentChildren;
}

export function VirtualList(props: VirtualListProps) {
  const { count, rowHeight, follow = false } = props;
  const box = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 400 });
  const atBottom = useRef(true);

  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = (): void => setView({ top: el.scrollTop, height: el.clientHeight || 400 });
    measure();
    const observer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(measure) : null;
    observer?.observe(el);
    return () => observer?.disconnect();
  }, []);

  useEffect(() => {
    const el = box.current;
    if (el && follow && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [count, follow, props.version]);

  const onScroll = (): void => {
    const el = box.current;
    if (!el) return;
    atBottom.current = el.scrollTop + el.clientHeight >= el.scrollHeight - rowHeight;
    setView({ top: el.scrollTop, height: el.clientHeight });
  };

  const { start, end } = visibleRange(view.top, view.height, rowHeight, count);
  const rows: ComponentChildren[] = [];
  for (let i = start; i < end; i++) rows.push(props.renderRow(i));
  return (
    <div
      ref={box}
      class={`ui-virtual ${props.class ?? ""}`}
      onScroll={onScroll}
      tabIndex={0}
      role={(props.role ?? "list") as "list"}
      aria-label={props.label}
      aria-rowcount={props.role === "grid" || props.role === "table" ? count : undefined}
    >
      {props.header}
      <div class="ui-virtual-space" style={{ height: `${count * rowHeight}px` }}>
        <div class="ui-virtual-rows" style={{ transform: `translateY(${start * rowHeight}px)` }}>
          {rows}
        </div>
      </div>
    </div>
  );
}
