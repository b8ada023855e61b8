/**
 * The live feed (`/events`): server-sent events read from a fetch() stream
 * with the key in the Authorization header. Each message carries a batch of
 * engine-shaped events and an opaque cursor (`id:`); after a dropped
 * connection the feed resumes at that cursor, so nothing is missed. A
 * reconnect before any cursor arrived may have missed events: `onGap` tells
 * the page to load its data again.
 */
import type { EngineEvent } from "../dag/types";
import type { Api } from "./api";
import { SseParser } from "./sse";

/** A feed event: the engine's shape, plus what the server's feed adds. */
export interface FeedEvent extends EngineEvent {
  seq?: number;
  transition_id?: string;
  position?: number;
}

export type FeedStatus = "connecting" | "live" | "retrying" | "refused";

export interface FeedOptions {
  api: Api;
  /** Only this run's events (the server filters; the page filters again). */
  flowRunId?: string;
  onEvents: (events: FeedEvent[]) => void;
  /** The stream is open: from here on nothing is missed. Load page data now. */
  onOpen?: () => void;
  onGap?: () => void;
  onStatus?: (status: FeedStatus, detail?: string) => void;
}

export interface Feed {
  close(): void;
}

const MAX_BACKOFF_MS = 10_000;

export function feedUrl(cursor: string | null, flowRunId?: string): string {
  const params = new URLSearchParams();
  if (cursor) params.set("cursor", cursor);
  if (flowRunId) params.set("flow_run_id", flowRunId);
  const search = params.toString();
  return search ? `/events?${search}` : "/events";
}

/** Decode one message's data: a JSON list of events (or one event). */
export function decodeBatch(data: string): FeedEvent[] {
  if (!data) return [];
  const parsed: unknown = JSON.parse(data);
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.filter((e): e is FeedEvent => !!e && typeof e === "object" && "kind" in e);
}

export function openFeed(options: FeedOptions): Feed {
  const controller = new AbortController();
  const position: { cursor: string | null } = { cursor: null };
  let closed = false;
  const loop = async (): Promise<void> => {
    let backoff = 500;
    for (let first = true; !closed; first = false) {
      if (!first && position.cursor === null) options.onGap?.();
      let outcome: "again" | "stop" | "opened" = "again";
      try {
        outcome = await connectOnce(options, position, controller.signal);
      } catch (err) {
        if (closed) return;
        options.onStatus?.("retrying", String((err as Error)?.message ?? err));
      }
      if (outcome === "stop" || closed) return;
      if (outcome === "opened") backoff = 500;
      options.onStatus?.("retrying");
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    }
  };
  void loop();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}

/** One connection: "stop" when the key is refused, "opened" when it streamed and ended. */
async function connectOnce(
  options: FeedOptions,
  position: { cursor: string | null },
  signal: AbortSignal,
): Promise<"again" | "stop" | "opened"> {
  options.onStatus?.("connecting");
  const response = await fetch(feedUrl(position.cursor, options.flowRunId), { headers: options.api.headers(), signal });
  if (response.status === 401 || response.status === 403) {
    let message = `the live feed was refused (${response.status})`;
    try {
      message = (await response.json()).errors?.[0]?.message ?? message;
    } catch {
      // keep the generic message
    }
    options.onStatus?.("refused", message);
    return "stop";
  }
  if (!response.ok || !response.body) return "again";
  options.onStatus?.("live");
  options.onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "opened";
    for (const message of parser.push(value)) {
      if (message.event === "error") {
        // The server ends the stream this way when the key is revoked: do not reconnect.
        options.onStatus?.("refused", message.data);
        return "stop";
      }
      if (message.id) position.cursor = message.id;
      const events = decodeBatch(message.data);
      const mine = options.flowRunId ? events.filter((e) => e.flow_run_id === options.flowRunId) : events;
      if (mine.length) options.onEvents(mine);
    }
  }
}
