/** Sign in: the API key, checked with the server, kept in this tab's session only. */
import { useState } from "preact/hooks";
import { signInMessage } from "../api";

export function SignIn({ onSignIn, notice }: { onSignIn: (key: string) => Promise<void>; notice: string | null }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(notice);
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    if (!key.trim()) {
      setError("Paste an API key first: `nbflow keys create --role user` makes one.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSignIn(key);
    } catch (err) {
      setError(signInMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="ui-signin" id="main">
      <form onSubmit={submit} aria-describedby="signin-help">
        <h1>nbflow</h1>
        <p id="signin-help" class="ui-muted">
          Sign in with an API key of this server. It stays in this browser tab until you sign out or close it.
        </p>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellcheck={false}
          placeholder="nbf_…"
          value={key}
          onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)}
          aria-invalid={error ? true : undefined}
          aria-errormessage={error ? "signin-error" : undefined}
          autoFocus
        />
        {error && (
          <p id="signin-error" class="ui-error-text" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="ui-primary" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
