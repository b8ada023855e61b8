import { describe, expect, it, vi } from "vitest";
import type { Api } from "../src/ui/api";
import type { FeedEvent, FeedOptions } from "../src/ui/feed";

const opened: { options: FeedOptions; closed: boolean }[] = [];
vi.mock("../src/ui/feed", () => ({
  openFeed: (options: FeedOptions) => {
    const entry = { options, closed: false };
    opened.push(entry);
    return { close: () => void (entry.closed = true) };
  },
}));

const { FeedHub } = await import("../src/ui/feedhub");

describe("FeedHub", () => {
  it("opens one connection for all subscribers, fans events out, closes with the last", () => {
    const hub = new FeedHub({} as Api);
    const a: FeedEvent[][] = [];
    const b: FeedEvent[][] = [];
    const gaps: string[] = [];
    const offA = hub.subscribe({ onEvents: (e) => a.push(e), onGap: () => gaps.push("a") });
    const offB = hub.subscribe({ onEvents: (e) => b.push(e) });
    expect(opened).toHaveLength(1);
    const batch = [{ kind: "state", flow_run_id: "r", task: null, timestamp: 1 } as FeedEvent];
    opened[0]?.options.onEvents(batch);
    opened[0]?.options.onGap?.();
    expect([a, b, gaps]).toEqual([[batch], [batch], ["a"]]);
    offA();
    expect(opened[0]?.closed).toBe(false);
    offB();
    expect(opened[0]?.closed).toBe(true);
    hub.subscribe({ onEvents: () => {} });
    expect(opened).toHaveLength(2);
  });
});
