/** The Run form's values: text fields become JSON parameter values, labels a list. */
import type { Parameter } from "./queries";

/** The text a field starts with: strings as they are, everything else as JSON. */
export const fieldText = (value: unknown): string =>
  value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);

/**
 * A field's text as the parameter's value. A parameter whose default is a
 * string takes the text as it is; any other default asks for JSON (a number,
 * a list, an object, true/false/null); a parameter without a default takes
 * JSON when the text is JSON, else the text.
 */
export function parseField(param: Parameter, text: string): { value: unknown } | { error: string } {
  const hasDefault = param.default !== undefined && param.default !== null;
  if (typeof param.default === "string") return { value: text };
  if (!hasDefault && text.trim() === "") {
    return param.required ? { error: `${param.name} is required` } : { value: param.default ?? null };
  }
  try {
    return { value: JSON.parse(text) };
  } catch {
    if (!hasDefault) return { value: text };
    return { error: `${param.name} needs a JSON value like ${fieldText(param.default)} (got ${JSON.stringify(text)})` };
  }
}

/** Values for the parameters whose field differs from the default (the server fills the rest). */
export function formParameters(
  params: readonly Parameter[],
  texts: Readonly<Record<string, string>>,
): { values: Record<string, unknown>; errors: string[] } {
  const values: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const p of params) {
    const text = texts[p.name] ?? fieldText(p.default);
    if (text === fieldText(p.default) && !p.required) continue;
    const parsed = parseField(p, text);
    if ("error" in parsed) errors.push(parsed.error);
    else values[p.name] = parsed.value;
  }
  return { values, errors };
}

export const parseLabels = (text: string): string[] => [
  ...new Set(
    text
      .split(",")
      .map((l) => l.trim())
      .filter(Boolean),
  ),
];

/** "every 10m", "cron 0 6 * * * (Europe/Paris)", or "" without a schedule. */
export function describeSchedule(schedule: Record<string, unknown> | null | undefined): string {
  if (!schedule) return "";
  const zone = typeof schedule.timezone === "string" && schedule.timezone !== "UTC" ? ` (${schedule.timezone})` : "";
  if (schedule.type === "cron") return `cron ${String(schedule.cron)}${zone}`;
  if (schedule.type === "interval" && typeof schedule.interval === "number") {
    let seconds = schedule.interval;
    for (const [unit, size] of [["w", 604800], ["d", 86400], ["h", 3600], ["m", 60]] as const) {
      if (seconds && seconds % size === 0) return `every ${seconds / size}${unit}`;
    }
    return `every ${seconds}s`;
  }
  return String(schedule.type ?? "schedule");
}
