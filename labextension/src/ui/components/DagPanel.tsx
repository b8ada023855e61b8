/**
 * The shared DAG renderer (`src/dag`) inside a page: the same component the
 * notebook widget draws, with its legend and progress line. The page hands
 * it the structure once and run states as they come (`onView` gives the
 * view, whose `applyEvents` takes feed events).
 */
import { useEffect, useRef } from "preact/hooks";
import { Legend } from "../../dag/legend";
import { ProgressView } from "../../dag/progress";
import type { FlowGraph, RunSnapshot } from "../../dag/types";
import { type DagView, createDagView } from "../../dag/view";

export interface DagPanelProps {
  graph: FlowGraph;
  /** States to start from (a run's history); null for a structure without a run. */
  snapshot?: RunSnapshot | null;
  selected?: string | null;
  onSelect?: (slug: string | null) => void;
  onView?: (view: DagView | null) => void;
  /** Show the progress line (run pages). */
  progress?: boolean;
  label: string;
}

export function DagPanel(props: DagPanelProps) {
  const host = useRef<HTMLDivElement>(null);
  const legendHost = useRef<HTMLDivElement>(null);
  const view = useRef<DagView | null>(null);
  const handlers = useRef(props);
  handlers.current = props;

  useEffect(() => {
    const el = host.current;
    const legendEl = legendHost.current;
    if (!el || !legendEl) return;
    const doc = el.ownerDocument;
    const legend = new Legend(doc);
    const progress = new ProgressView(doc);
    legendEl.append(...(props.progress ? [progress.el] : []), legend.el);
    const v = createDagView(el, {
      onSelect: (slug) => handlers.current.onSelect?.(slug),
      onUpdate: (summary) => {
        progress.update(summary);
        legend.setCounts(summary.counts, summary.runState === null ? summary.total : 0);
      },
    });
    view.current = v;
    v.setGraph(props.graph);
    if (props.snapshot) v.setStates(props.snapshot);
    performance.mark("nbflow:dag-drawn"); // the benchmark reads these marks
    handlers.current.onView?.(v);
    return () => {
      handlers.current.onView?.(null);
      v.destroy();
      legend.el.remove();
      progress.el.remove();
      view.current = null;
    };
  }, []);

  useEffect(() => {
    view.current?.setGraph(props.graph);
  }, [props.graph]);

  useEffect(() => {
    view.current?.select(props.selected ?? null);
  }, [props.selected]);

  return (
    <div class="ui-dag">
      <div class="ui-dag-legend" ref={legendHost} />
      <div class="ui-dag-canvas" ref={host} role="group" aria-label={props.label} />
    </div>
  );
}
