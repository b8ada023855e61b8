/**
 * One tenant-wide feed connection per tab, shared by every list that reloads
 * on feed events. A browser keeps at most six connections per server over
 * HTTP/1.1, and a feed holds one for as long as it is open: one per list (or
 * per tab and list) would soon leave none for the API. The connection opens
 * with the first subscriber and closes with the last.
 */
import type { Api } from "./api";
import { type Feed, type FeedEvent, openFeed } from "./feed";

export interface FeedSubscriber {
  onEvents: (events: FeedEvent[]) => void;
  /** Events may have been missed (a reconnect without a cursor): reload. */
  onGap?: () => void;
}

export class FeedHub {
  private readonly subscribers = new Set<FeedSubscriber>();
  private feed: Feed | null = null;

  constructor(private readonly api: Api) {}

  subscribe(subscriber: FeedSubscriber): () => void {
    this.subscribers.add(subscriber);
    if (!this.feed) {
      this.feed = openFeed({
        api: this.api,
        onEvents: (events) => this.subscribers.forEach((s) => s.onEvents(events)),
        onGap: () => this.subscribers.forEach((s) => s.onGap?.()),
      });
    }
    return () => {
      this.subscribers.delete(subscriber);
      if (this.subscribers.size === 0) this.close();
    };
  }

  /** Subscribers now (tests and the shell's status use it). */
  get size(): number {
    return this.subscribers.size;
  }

  close(): void {
    this.feed?.close();
    this.feed = null;
  }
}
