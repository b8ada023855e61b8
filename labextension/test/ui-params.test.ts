import { describe, expect, it } from "vitest";
import { describeSchedule, fieldText, formParameters, parseField, parseLabels } from "../src/ui/params";

describe("the Run form", () => {
  it("takes text for string parameters and JSON for the others", () => {
    expect(parseField({ name: "day", default: "2024-01-01" }, "42")).toEqual({ value: "42" });
    expect(parseField({ name: "n", default: 3 }, "5")).toEqual({ value: 5 });
    expect(parseField({ name: "regions", default: ["eu"] }, '["eu", "us"]')).toEqual({ value: ["eu", "us"] });
    expect(parseField({ name: "n", default: 3 }, "five")).toEqual({ error: 'n needs a JSON value like 3 (got "five")' });
    expect(parseField({ name: "x", required: true }, "")).toEqual({ error: "x is required" });
    expect(parseField({ name: "x", required: true }, "hello")).toEqual({ value: "hello" });
    expect(parseField({ name: "x", required: true }, "[1]")).toEqual({ value: [1] });
  });

  it("sends only the parameters that differ from their defaults", () => {
    const params = [{ name: "day", default: "2024-01-01" }, { name: "n", default: 3 }, { name: "flag", default: false }];
    const texts = { day: "2024-01-02", n: fieldText(3), flag: "true" };
    expect(formParameters(params, texts)).toEqual({ values: { day: "2024-01-02", flag: true }, errors: [] });
    expect(formParameters(params, { n: "x" }).errors).toEqual(['n needs a JSON value like 3 (got "x")']);
  });

  it("reads labels as a comma-separated set", () => {
    expect(parseLabels(" gpu, eu,,gpu ")).toEqual(["gpu", "eu"]);
    expect(parseLabels("")).toEqual([]);
  });

  it("describes schedules as the CLI does", () => {
    expect(describeSchedule({ type: "interval", interval: 3600 })).toBe("every 1h");
    expect(describeSchedule({ type: "interval", interval: 90 })).toBe("every 90s");
    expect(describeSchedule({ type: "cron", cron: "0 6 * * *", timezone: "Europe/Paris" })).toBe("cron 0 6 * * * (Europe/Paris)");
    expect(describeSchedule(null)).toBe("");
  });
});

describe("relative times", () => {
  it("reads in seconds, minutes, hours, then days", async () => {
    const { relativeTime } = await import("../src/ui/format");
    const now = Date.UTC(2024, 0, 10, 12);
    expect(relativeTime((now + 90_000) / 1000, now)).toBe("in 1m 30s");
    expect(relativeTime((now - 3 * 3600_000) / 1000, now)).toBe("3h 00m ago");
    expect(relativeTime((now + 9 * 86400_000 + 3600_000) / 1000, now)).toBe("in 9d 1h");
    expect(relativeTime(null, now)).toBe("—");
  });
});
