/**
 * Routes: every page has a path, so a link can be shared. Parsing and
 * formatting are pure (tested); `navigate` and `useRoute` use the history API.
 */
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "dashboard" }
  | { page: "flows" }
  | { page: "flow"; name: string }
  | { page: "run"; id: string }
  | { page: "agents" }
  | { page: "team" }
  | { page: "settings" }
  | { page: "not-found"; path: string };

export interface Location {
  route: Route;
  /** Query parameters: filters, the selected task, the log search. */
  query: URLSearchParams;
}

const decode = (part: string): string | null => {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
};

export function parseRoute(pathname: string): Route {
  const parts = pathname.split("/").filter(Boolean);
  const [head, arg, ...rest] = parts;
  if (head === undefined) return { page: "dashboard" };
  if (rest.length === 0) {
    if (arg === undefined) {
      if (head === "flows") return { page: "flows" };
      if (head === "agents") return { page: "agents" };
      if (head === "team") return { page: "team" };
      if (head === "settings") return { page: "settings" };
    } else {
      const value = decode(arg);
      if (value !== null && head === "flows") return { page: "flow", name: value };
      if (value !== null && head === "runs") return { page: "run", id: value };
    }
  }
  return { page: "not-found", path: pathname };
}

export function routePath(route: Route): string {
  switch (route.page) {
    case "dashboard":
      return "/";
    case "flows":
    case "agents":
    case "team":
    case "settings":
      return `/${route.page}`;
    case "flow":
      return `/flows/${encodeURIComponent(route.name)}`;
    case "run":
      return `/runs/${encodeURIComponent(route.id)}`;
    case "not-found":
      return route.path;
  }
}

/** A path with query parameters; empty values are left out so URLs stay short. */
export function href(route: Route, query: Record<string, string | null | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) params.set(k, v);
  const search = params.toString();
  return search ? `${routePath(route)}?${search}` : routePath(route);
}

export const currentLocation = (loc: { pathname: string; search: string } = window.location): Location => ({
  route: parseRoute(loc.pathname),
  query: new URLSearchParams(loc.search),
});

const CHANGE = "nbflow:navigate";

/** Go to a page (push) or change the current page's query (replace: no history entry per keystroke). */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === window.location.pathname + window.location.search) return;
  if (options.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event(CHANGE));
  if (!options.replace) window.scrollTo?.(0, 0);
}

/** Update some query parameters of the current page in place. */
export function setQuery(changes: Record<string, string | null>): void {
  const params = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v) params.set(k, v);
    else params.delete(k);
  }
  const search = params.toString();
  navigate(window.location.pathname + (search ? `?${search}` : ""), { replace: true });
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(currentLocation);
  useEffect(() => {
    const update = (): void => setLoc(currentLocation());
    window.addEventListener("popstate", update);
    window.addEventListener(CHANGE, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(CHANGE, update);
    };
  }, []);
  return loc;
}

/** Plain left clicks on internal links navigate in place; modified clicks open tabs as usual. */
export function onLinkClick(ev: MouseEvent): void {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const anchor = (ev.target as Element | null)?.closest?.("a");
  if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
  const url = new URL(anchor.href, window.location.href);
  if (url.origin !== window.location.origin || url.pathname.startsWith("/ui/")) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
}
