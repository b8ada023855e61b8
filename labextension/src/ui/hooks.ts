/** Hooks the pages share: the signed-in context, queries, the live feed, a clock. */
import { createContext } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import { type FeedEvent, openFeed } from "./feed";
import type { FeedHub } from "./feedhub";
import type { Me } from "./queries";

export interface Session {
  api: Api;
  me: Me;
  /** The tab's shared tenant-wide feed (lists reload on it). */
  hub: FeedHub;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}

/** May this key start and cancel runs, toggle schedules? (The server checks again.) */
export const canManage = (me: Me): boolean => me.role === "admin" || me.role === "user";

export interface QueryState<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  reload: () => void;
}

/** Run a query when `key` changes (and on reload); the last answer stays while reloading. */
export function useQuery<T>(query: string, variables: Record<string, unknown>, key: string): QueryState<T> {
  const { api } = useSession();
  const [state, setState] = useState<{ data: T | null; error: Error | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const vars = useRef(variables);
  vars.current = variables;
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    api.query<T>(query, vars.current, controller.signal).then(
      (data) => setState({ data, error: null, loading: false }),
      (error: Error) => {
        if (error?.name !== "AbortError") setState((s) => ({ ...s, error, loading: false }));
      },
    );
    return () => controller.abort();
  }, [api, query, key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Listen to one run's feed while mounted (its own connection, filtered by the server). */
export function useFeed(
  onEvents: (events: FeedEvent[]) => void,
  options: { flowRunId?: string; onOpen?: () => void; onGap?: () => void } = {},
): void {
  const { api } = useSession();
  const handlers = useRef({ onEvents, ...options });
  handlers.current = { onEvents, ...options };
  useEffect(() => {
    const feed = openFeed({
      api,
      ...(options.flowRunId ? { flowRunId: options.flowRunId } : {}),
      onEvents: (events) => handlers.current.onEvents(events),
      onOpen: () => handlers.current.onOpen?.(),
      onGap: () => handlers.current.onGap?.(),
    });
    return () => feed.close();
  }, [api, options.flowRunId]);
}

/**
 * A query that the live feed keeps current: any event (optionally only those
 * `relevant` says matter) reloads it, at most once per `wait` ms. No timer
 * polls the server; a dropped feed reloads once when it is back.
 */
export function useLiveQuery<T>(
  query: string,
  variables: Record<string, unknown>,
  key: string,
  relevant: (events: FeedEvent[]) => boolean = () => true,
  wait = 700,
): QueryState<T> {
  const state = useQuery<T>(query, variables, key);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const reload = state.reload;
  const soon = useCallback(() => {
    if (timer.current !== null) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      reload();
    }, wait);
  }, [reload, wait]);
  useEffect(() => () => {
    if (timer.current !== null) clearTimeout(timer.current);
  }, []);
  const { hub } = useSession();
  const handlers = useRef({ relevant, soon });
  handlers.current = { relevant, soon };
  useEffect(
    () =>
      hub.subscribe({
        onEvents: (events) => handlers.current.relevant(events) && handlers.current.soon(),
        onGap: () => handlers.current.soon(),
      }),
    [hub],
  );
  return state;
}

/** The time (epoch ms), moving every `ms` while `active`: durations of running things. */
export function useNow(ms = 1000, active = true): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (!active) return;
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms, active]);
  return now;
}

/** Re-render at most once per animation frame when `bump` is called (bursts of events). */
export function useFrameRefresh(): [number, () => void] {
  const [version, setVersion] = useState(0);
  const pending = useRef(false);
  const bump = useCallback(() => {
    if (pending.current) return;
    pending.current = true;
    requestAnimationFrame(() => {
      pending.current = false;
      setVersion((v) => v + 1);
    });
  }, []);
  return [version, bump];
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · nbflow` : "nbflow";
  }, [title]);
}
