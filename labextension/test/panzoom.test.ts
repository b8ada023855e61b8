// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { PanZoom } from "../src/dag/panzoom";

const NS = "http://www.w3.org/2000/svg";

function canvas(width: number, height: number): { svg: SVGSVGElement; viewport: SVGGElement } {
  const svg = document.createElementNS(NS, "svg") as SVGSVGElement;
  Object.defineProperty(svg, "clientWidth", { value: width });
  Object.defineProperty(svg, "clientHeight", { value: height });
  const viewport = document.createElementNS(NS, "g") as SVGGElement;
  svg.append(viewport);
  document.body.append(svg);
  return { svg, viewport };
}

const scaleOf = (g: SVGGElement): number => Number(/scale\(([\d.]+)\)/.exec(g.getAttribute("transform") ?? "")?.[1]);

describe("PanZoom.fit", () => {
  it("fits a wide graph into view", () => {
    const { svg, viewport } = canvas(800, 400);
    const pz = new PanZoom(svg, viewport);
    pz.setContentSize(1600, 200);
    pz.fit();
    expect(scaleOf(viewport)).toBeLessThan(0.5);
  });

  it("keeps a small flow readable: never below the floor, starting at the left edge", () => {
    const { svg, viewport } = canvas(800, 400);
    const pz = new PanZoom(svg, viewport);
    pz.minFitScale = 0.6;
    pz.setContentSize(1600, 200);
    pz.fit();
    expect(scaleOf(viewport)).toBeCloseTo(0.6);
    expect(viewport.getAttribute("transform")).toMatch(/^translate\(\d+(\.\d+)?[ ,]/);
  });
});
