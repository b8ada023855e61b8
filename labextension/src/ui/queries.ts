/** The GraphQL documents the pages send, and the shapes they get back. */
import type { FlowGraph } from "../dag/types";

export interface Me {
  tenantId: string;
  tenantName: string;
  role: "admin" | "user" | "agent" | "read-only";
}

export interface Parameter {
  name: string;
  default?: unknown;
  required?: boolean;
}

export interface FlowVersion {
  id: string;
  version: number;
  structure: FlowGraph;
  parameters: Parameter[];
  schedule: Record<string, unknown> | null;
  labels: string[];
  created: string;
}

export interface Flow {
  id: string;
  name: string;
  scheduleActive: boolean;
  created: string;
}

export interface RunRow {
  id: string;
  state: string;
  message: string;
  scheduledStartTime: string;
  startTime: string | null;
  endTime: string | null;
  labels: string[];
  parameters: Record<string, unknown>;
  flow?: { name: string };
}

export interface StateCount {
  state: string;
  count: number;
}

export interface AgentRow {
  id: string;
  name: string;
  labels: string[];
  lastSeen: string;
  created: string;
  online: boolean;
  activeRuns: number;
}

export const ME = `{ me { tenantId tenantName role } }`;

const RUN_ROW = `id state message scheduledStartTime startTime endTime labels parameters`;
const AGENT = `id name labels lastSeen created online activeRuns`;

export const DASHBOARD = `query Dashboard($hours: Float!, $buckets: Int!) { dashboard(hours: $hours, buckets: $buckets) {
  since until counts { state count } buckets { start counts { state count } }
  upcoming { ${RUN_ROW} flow { name } }
  failingFlows { flow { name } failed runs lastFailure }
  stranded { labels count flows nextStart }
  agents { ${AGENT} } } }`;

export interface DashboardData {
  dashboard: {
    since: string;
    until: string;
    counts: StateCount[];
    buckets: { start: string; counts: StateCount[] }[];
    upcoming: RunRow[];
    failingFlows: { flow: { name: string }; failed: number; runs: number; lastFailure: string }[];
    stranded: { labels: string[]; count: number; flows: string[]; nextStart: string }[];
    agents: AgentRow[];
  };
}

export const FLOWS = `{ flows(limit: 500) { id name scheduleActive created
  latestVersion { id version schedule labels created } versions { id } } }`;

export interface FlowsData {
  flows: (Flow & {
    latestVersion: Pick<FlowVersion, "id" | "version" | "schedule" | "labels" | "created"> | null;
    versions: { id: string }[];
  })[];
}

export const RECENT_RUNS = `query Recent($ids: [String!]!) { recentRuns(flowIds: $ids, perFlow: 12) {
  flowId runs { id state scheduledStartTime } } }`;

export interface RecentRunsData {
  recentRuns: { flowId: string; runs: Pick<RunRow, "id" | "state" | "scheduledStartTime">[] }[];
}

export const FLOW = `query Flow($name: String!) { flow(name: $name) { id name scheduleActive created
  versions { id version structure parameters schedule labels created } } }`;

export interface FlowData {
  flow: Flow & { versions: FlowVersion[] };
}

export const FLOW_RUNS = `query Runs($flowId: String, $states: [String!], $limit: Int!, $offset: Int!) {
  flowRuns(flowId: $flowId, states: $states, limit: $limit, offset: $offset) {
    total nextOffset items { ${RUN_ROW} flow { name } flowVersion { version } } } }`;

export interface FlowRunsData {
  flowRuns: { total: number; nextOffset: number | null; items: (RunRow & { flowVersion: { version: number } })[] };
}

export const SET_SCHEDULE = `mutation Schedule($id: String!, $active: Boolean!) {
  setScheduleActive(flowId: $id, active: $active) { id scheduleActive } }`;

export const CREATE_RUN = `mutation Run($input: CreateFlowRunInput!) { createFlowRun(input: $input) { flowRun { id } created } }`;

export interface CreateRunData {
  createFlowRun: { flowRun: { id: string }; created: boolean };
}

export const CANCEL_RUN = `mutation Cancel($id: String!) { cancelFlowRun(flowRunId: $id) { id state } }`;

export const RUN = `query Run($id: String!) {
  flowRun(id: $id) { ${RUN_ROW} flowId version agentId resubmits idempotencyKey
    flow { id name } flowVersion { version structure } }
  runHistoryRows(flowRunId: $id) }`;

export interface RunData {
  flowRun: RunRow & {
    flowId: string;
    version: number;
    agentId: string | null;
    resubmits: number;
    idempotencyKey: string | null;
    flow: { id: string; name: string };
    flowVersion: { version: number; structure: FlowGraph };
  };
  runHistoryRows: HistoryRow[];
}

/** One state change of the run (task null) or of a task, in recorded order (`runHistoryRows`). */
export type HistoryRow = [
  position: number,
  task: string | null,
  state: string,
  message: string,
  attempt: number,
  timestamp: number,
  transitionId: string | null,
];

export const RUN_LOGS = `query Logs($id: String!, $after: Int!, $limit: Int!) {
  runLogRows(flowRunId: $id, afterId: $after, limit: $limit) { rows count lastId more } }`;

/** [id, seq, taskSlug, level, message, timestamp]: the compact form of a log line. */
export type LogRow = [number, number, string | null, string, string, number];

export interface LogRowsData {
  runLogRows: { rows: LogRow[]; count: number; lastId: number; more: boolean };
}

export const AGENTS = `query Agents($hours: Float!) { agents(hours: $hours) { ${AGENT} } }`;

export const API_KEYS = `{ me { tenantId tenantName role } apiKeys { id name role prefix created revoked } }`;

export interface ApiKeyRow {
  id: string;
  name: string;
  role: string;
  prefix: string;
  created: string;
  revoked: boolean;
}

export const CREATE_KEY = `mutation Key($role: String!, $name: String!) { createApiKey(role: $role, name: $name) { id name role key } }`;
export const REVOKE_KEY = `mutation Revoke($id: String!) { revokeApiKey(id: $id) }`;

/** The team page: hooks and their recent deliveries, tag limits and their holders, secret names. */
export const TEAM = `{ hooks { id name kind target scope states flowName lateMinutes }
  hookDeliveries(limit: 50) { id hookName state flowRunId taskSlug status attempts lastError created }
  concurrencyLimits { kind tag limit inUse holders { flowRunId taskSlug } }
  secrets { name updated } }`;

export interface HookRow {
  id: string;
  name: string;
  kind: string;
  target: string;
  scope: string;
  states: string[];
  flowName: string | null;
  lateMinutes: number | null;
}

export interface DeliveryRow {
  id: string;
  hookName: string;
  state: string;
  flowRunId: string;
  taskSlug: string | null;
  status: string;
  attempts: number;
  lastError: string;
  created: string;
}

export interface LimitRow {
  kind: string;
  tag: string;
  limit: number;
  inUse: number;
  holders: { flowRunId: string; taskSlug: string }[];
}

export interface TeamData {
  hooks: HookRow[];
  hookDeliveries: DeliveryRow[];
  concurrencyLimits: LimitRow[];
  secrets: { name: string; updated: string }[];
}
