import { describe, expect, it } from "vitest";
import { decodeBatch, feedUrl } from "../src/ui/feed";
import { SseParser } from "../src/ui/sse";

describe("SseParser", () => {
  it("yields whole messages however the stream is cut, and skips comments", () => {
    const stream = ': nbflow live feed\n\nid: 7.3.9\nevent: batch\ndata: [{"kind":"log"}]\n\n: keep-alive\n\nid: 8\r\ndata: a\r\ndata: b\r\n\r\n';
    for (const size of [1, 3, 7, stream.length]) {
      const parser = new SseParser();
      const got = [];
      for (let i = 0; i < stream.length; i += size) got.push(...parser.push(stream.slice(i, i + size)));
      expect(got).toEqual([
        { id: "7.3.9", event: "batch", data: '[{"kind":"log"}]' },
        { id: "8", event: "message", data: "a\nb" },
      ]);
    }
  });

  it("keeps an unfinished message until its blank line arrives", () => {
    const parser = new SseParser();
    expect(parser.push("id: 1\ndata: x\n")).toEqual([]);
    expect(parser.push("\n")).toEqual([{ id: "1", event: "message", data: "x" }]);
  });
});

describe("the feed's requests", () => {
  it("resume at an opaque cursor and name the run; never carry a key", () => {
    expect(feedUrl(null)).toBe("/events");
    expect(feedUrl("opaque:42/x", "run-1")).toBe("/events?cursor=opaque%3A42%2Fx&flow_run_id=run-1");
    expect(feedUrl(null, "run-1")).not.toContain("token");
  });

  it("decodes a batch or a single event and drops junk", () => {
    expect(decodeBatch('[{"kind":"state","task":"a"},null,3]')).toEqual([{ kind: "state", task: "a" }]);
    expect(decodeBatch('{"kind":"log","message":"hi"}')).toEqual([{ kind: "log", message: "hi" }]);
    expect(decodeBatch("")).toEqual([]);
  });
});
