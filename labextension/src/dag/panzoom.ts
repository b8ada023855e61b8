/**
 * Drag to pan, wheel to zoom (around the pointer), fit-to-view. A press that
 * does not move is reported as a click so nodes stay selectable.
 */
export interface Transform {
  x: number;
  y: number;
  k: number;
}

export interface PanZoomOptions {
  onClick?: (target: Element) => void;
  /** Called after every transform change (tests and the web UI observe it). */
  onTransform?: (t: Transform) => void;
  /** After the canvas changed size (and was fitted again unless the user moved it). */
  onResize?: () => void;
}

const CLICK_SLOP = 4;
const MAX_SCALE = 3;
const FIT_PADDING = 16;

export class PanZoom {
  private t: Transform = { x: 0, y: 0, k: 1 };
  private contentWidth = 0;
  private contentHeight = 0;
  private moved = false;
  private drag: { id: number; x: number; y: number; tx: number; ty: number; target: Element; panning: boolean } | null =
    null;
  private readonly observer: ResizeObserver | null;
  private fitPending = true;

  constructor(
    private readonly svg: SVGSVGElement,
    private readonly viewport: SVGGElement,
    private readonly options: PanZoomOptions = {},
  ) {
    svg.addEventListener("pointerdown", this.onDown);
    svg.addEventListener("pointermove", this.onMove);
    svg.addEventListener("pointerup", this.onUp);
    svg.addEventListener("pointercancel", this.onCancel);
    svg.addEventListener("wheel", this.onWheel, { passive: false });
    // anywidget renders before the element is attached: fit once it has a size.
    const RO = svg.ownerDocument.defaultView?.ResizeObserver;
    this.observer = RO ? new RO(() => this.onResize()) : null;
    this.observer?.observe(svg);
  }

  get transform(): Transform {
    return { ...this.t };
  }

  /** True once the user panned or zoomed: then resizes and new states leave the view alone. */
  get userMoved(): boolean {
    return this.moved;
  }

  setContentSize(width: number, height: number): void {
    this.contentWidth = width;
    this.contentHeight = height;
  }

  /**
   * Fit never zooms out below this (set by the view for small flows): a 10-task flow
   * should stay readable and pan, not shrink into unlabeled boxes.
   */
  minFitScale = 0;

  /**
   * Fit the graph in view. `whole` (the Fit button) shows every node even when that
   * goes below `minFitScale`: the user asked to see the whole graph.
   */
  fit(whole = false): void {
    const w = this.svg.clientWidth;
    const h = this.svg.clientHeight;
    if (!w || !h || !this.contentWidth || !this.contentHeight) {
      this.fitPending = true;
      return;
    }
    this.fitPending = false;
    this.moved = false;
    const k = Math.max(
      Math.min((w - 2 * FIT_PADDING) / this.contentWidth, (h - 2 * FIT_PADDING) / this.contentHeight, 1),
      whole ? 0 : Math.min(this.minFitScale, 1),
    );
    // Centre what fits; what does not starts at the top-left, where the flow begins.
    const x = this.contentWidth * k <= w ? (w - this.contentWidth * k) / 2 : FIT_PADDING;
    const y = this.contentHeight * k <= h ? (h - this.contentHeight * k) / 2 : FIT_PADDING;
    this.set({ k, x, y });
  }

  /**
   * Pan (never zoom) the least needed so the box (content coordinates) is in view,
   * e.g. a node just selected while the detail panel narrowed the canvas.
   */
  reveal(box: { x: number; y: number; width: number; height: number }): void {
    const w = this.svg.clientWidth;
    const h = this.svg.clientHeight;
    if (!w || !h) return;
    const { k } = this.t;
    const shift = (start: number, size: number, offset: number, view: number): number => {
      const a = start * k + offset;
      const b = (start + size) * k + offset;
      if (a < FIT_PADDING) return FIT_PADDING - a;
      if (b > view - FIT_PADDING) return Math.max(view - FIT_PADDING - b, FIT_PADDING - a);
      return 0;
    };
    const dx = shift(box.x, box.width, this.t.x, w);
    const dy = shift(box.y, box.height, this.t.y, h);
    if (dx || dy) this.set({ k, x: this.t.x + dx, y: this.t.y + dy });
  }

  /** Zoom by `factor` keeping the point (px, py), in svg pixels, where it is. */
  zoomAt(factor: number, px: number, py: number): void {
    const k = clamp(this.t.k * factor, this.minScale(), MAX_SCALE);
    const ratio = k / this.t.k;
    this.moved = true;
    this.set({ k, x: px - (px - this.t.x) * ratio, y: py - (py - this.t.y) * ratio });
  }

  panBy(dx: number, dy: number): void {
    this.moved = true;
    this.set({ k: this.t.k, x: this.t.x + dx, y: this.t.y + dy });
  }

  destroy(): void {
    this.observer?.disconnect();
    this.svg.removeEventListener("pointerdown", this.onDown);
    this.svg.removeEventListener("pointermove", this.onMove);
    this.svg.removeEventListener("pointerup", this.onUp);
    this.svg.removeEventListener("pointercancel", this.onCancel);
    this.svg.removeEventListener("wheel", this.onWheel);
  }

  private minScale(): number {
    const w = this.svg.clientWidth || 1;
    const h = this.svg.clientHeight || 1;
    const fitScale = Math.min(w / (this.contentWidth || 1), h / (this.contentHeight || 1), 1);
    return fitScale / 2;
  }

  private set(t: Transform): void {
    this.t = t;
    this.viewport.setAttribute("transform", `translate(${t.x.toFixed(2)},${t.y.toFixed(2)}) scale(${t.k.toFixed(5)})`);
    this.options.onTransform?.(this.transform);
  }

  private onResize(): void {
    if (this.fitPending || !this.moved) this.fit();
    this.options.onResize?.();
  }

  private readonly onDown = (ev: PointerEvent): void => {
    if (ev.button !== 0 || !(ev.target instanceof Element)) return;
    this.drag = { id: ev.pointerId, x: ev.clientX, y: ev.clientY, tx: this.t.x, ty: this.t.y, target: ev.target, panning: false };
  };

  private readonly onMove = (ev: PointerEvent): void => {
    const d = this.drag;
    if (!d || d.id !== ev.pointerId) return;
    const dx = ev.clientX - d.x;
    const dy = ev.clientY - d.y;
    if (!d.panning && Math.hypot(dx, dy) < CLICK_SLOP) return;
    if (!d.panning) {
      d.panning = true;
      // Capture only once it is a drag, so a plain click still reaches its node.
      this.svg.setPointerCapture?.(ev.pointerId);
      this.svg.classList.add("nbflow-panning");
    }
    this.moved = true;
    this.set({ k: this.t.k, x: d.tx + dx, y: d.ty + dy });
  };

  private readonly onUp = (ev: PointerEvent): void => {
    const d = this.drag;
    if (!d || d.id !== ev.pointerId) return;
    this.drag = null;
    this.svg.classList.remove("nbflow-panning");
    if (!d.panning) this.options.onClick?.(d.target);
  };

  private readonly onCancel = (): void => {
    this.drag = null;
    this.svg.classList.remove("nbflow-panning");
  };

  private readonly onWheel = (ev: WheelEvent): void => {
    ev.preventDefault();
    const rect = this.svg.getBoundingClientRect();
    // deltaMode 1 = lines (Firefox); scale to pixels so both feel the same.
    const delta = ev.deltaY * (ev.deltaMode === 1 ? 16 : 1);
    this.zoomAt(Math.exp(-delta * 0.0015), ev.clientX - rect.left, ev.clientY - rect.top);
  };
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
