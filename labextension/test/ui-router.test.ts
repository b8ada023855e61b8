import { describe, expect, it } from "vitest";
import { href, parseRoute, routePath } from "../src/ui/router";
import type { Route } from "../src/ui/router";

describe("routes", () => {
  it.each<[string, Route]>([
    ["/", { page: "dashboard" }],
    ["/flows", { page: "flows" }],
    ["/flows/", { page: "flows" }],
    ["/flows/daily%20sales", { page: "flow", name: "daily sales" }],
    ["/runs/3f2a", { page: "run", id: "3f2a" }],
    ["/agents", { page: "agents" }],
    ["/team", { page: "team" }],
    ["/settings", { page: "settings" }],
    ["/flows/a/b", { page: "not-found", path: "/flows/a/b" }],
    ["/runs", { page: "not-found", path: "/runs" }],
    ["/flows/%E0%A4%A", { page: "not-found", path: "/flows/%E0%A4%A" }],
    ["/nope", { page: "not-found", path: "/nope" }],
  ])("%s is %o", (path, route) => {
    expect(parseRoute(path)).toEqual(route);
  });

  it("formats every page back to a path that parses to the same page", () => {
    const routes: Route[] = [
      { page: "dashboard" },
      { page: "flows" },
      { page: "flow", name: "etl/v2 & more?" },
      { page: "run", id: "abc-123" },
      { page: "agents" },
      { page: "team" },
      { page: "settings" },
    ];
    for (const route of routes) expect(parseRoute(routePath(route))).toEqual(route);
  });

  it("puts filters in the query and leaves empty ones out", () => {
    expect(href({ page: "run", id: "r1" }, { task: "clean", level: null, q: "" })).toBe("/runs/r1?task=clean");
    expect(href({ page: "flow", name: "etl" }, { state: "Failed", page: "2" })).toBe("/flows/etl?state=Failed&page=2");
    expect(href({ page: "dashboard" })).toBe("/");
  });
});
