/** Settings for admins: the tenant, and API keys with their roles (create, revoke). */
import { useState } from "preact/hooks";
import { Card, ErrorBox, Loading, Table } from "../components/common";
import { formatTime } from "../format";
import { useQuery, useSession, useTitle } from "../hooks";
import { API_KEYS, type ApiKeyRow, CREATE_KEY, type Me, REVOKE_KEY } from "../queries";

const ROLES = [
  ["read-only", "sees flows, runs and logs"],
  ["user", "also registers flows, starts and cancels runs, toggles schedules"],
  ["agent", "pulls work and reports states and logs (for nbflow agent start)"],
  ["admin", "everything, including keys"],
] as const;

export function SettingsPage() {
  useTitle("Settings");
  const { me } = useSession();
  if (me.role !== "admin") {
    return (
      <div class="ui-page">
        <h1>Settings</h1>
        <p>Only an admin key can manage keys. You are signed in with a {me.role} key.</p>
      </div>
    );
  }
  return <AdminSettings />;
}

function AdminSettings() {
  const q = useQuery<{ me: Me; apiKeys: ApiKeyRow[] }>(API_KEYS, {}, "keys");
  if (!q.data) return q.error ? <ErrorBox error={q.error} /> : <Loading />;
  return (
    <div class="ui-page">
      <h1>Settings</h1>
      <Card title="Tenant">
        <dl class="ui-facts">
          <div>
            <dt>Name</dt>
            <dd>{q.data.me.tenantName}</dd>
          </div>
          <div>
            <dt>Id</dt>
            <dd class="ui-mono">{q.data.me.tenantId}</dd>
          </div>
        </dl>
        <p class="ui-muted">
          Another tenant (its own flows, runs and keys): <code>nbflow server tenants create NAME</code> on the server.
        </p>
      </Card>
      <Card title="API keys">
        <ApiKeys keys={q.data.apiKeys} reload={q.reload} />
      </Card>
    </div>
  );
}

function ApiKeys({ keys, reload }: { keys: ApiKeyRow[]; reload: () => void }) {
  const { api } = useSession();
  const [created, setCreated] = useState<{ name: string; role: string; key: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (work: () => Promise<void>): Promise<void> => {
    setError(null);
    try {
      await work();
      reload();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const create = (role: string, name: string) =>
    run(async () => {
      const data = await api.query<{ createApiKey: { name: string; role: string; key: string } }>(CREATE_KEY, { role, name });
      setCreated(data.createApiKey);
    });
  const revoke = (key: ApiKeyRow) => {
    if (!window.confirm(`Revoke the key "${key.name}" (${key.prefix})? Whatever uses it stops working.`)) return;
    void run(async () => void (await api.query(REVOKE_KEY, { id: key.id })));
  };
  return (
    <>
      <CreateKeyForm onCreate={create} />
      {error && (
        <p class="ui-error-text" role="alert">
          {error}
        </p>
      )}
      {created && (
        <div class="ui-note" role="status">
          New {created.role} key "{created.name}", shown once: copy it now.
          <pre class="ui-mono ui-secret">{created.key}</pre>
        </div>
      )}
      <KeyTable keys={keys} onRevoke={revoke} />
    </>
  );
}

function CreateKeyForm({ onCreate }: { onCreate: (role: string, name: string) => Promise<void> }) {
  const [role, setRole] = useState("read-only");
  const [name, setName] = useState("");
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    await onCreate(role, name);
    setName("");
  };
  return (
    <>
      <form class="ui-inline-form" onSubmit={submit} aria-label="Create an API key">
        <label>
          Role{" "}
          <select value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value)}>
            {ROLES.map(([r]) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          Name <input value={name} placeholder="what uses it" onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type="submit" class="ui-primary">
          Create key
        </button>
      </form>
      <p class="ui-muted">{ROLES.find(([r]) => r === role)?.[1]}</p>
    </>
  );
}

function KeyTable({ keys, onRevoke }: { keys: ApiKeyRow[]; onRevoke: (key: ApiKeyRow) => void }) {
  return (
    <Table label="API keys" columns={["Name", "Role", "Prefix", "Created", "Status", { hidden: "Actions" }]}>
      {keys.map((k) => (
        <tr key={k.id} data-key={k.prefix}>
          <td>{k.name}</td>
          <td>{k.role}</td>
          <td class="ui-mono">{k.prefix}</td>
          <td>{formatTime(k.created)}</td>
          <td>{k.revoked ? "revoked" : "active"}</td>
          <td>
            {!k.revoked && (
              <button type="button" class="ui-link-button" onClick={() => onRevoke(k)} aria-label={`Revoke ${k.name}`}>
                Revoke
              </button>
            )}
          </td>
        </tr>
      ))}
    </Table>
  );
}
