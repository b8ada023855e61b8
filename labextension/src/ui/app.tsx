/**
 * The app shell: sign-in (the key is checked with the server before it is
 * kept), the navigation, and the page for the current URL.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { Api, ApiError, signInMessage } from "./api";
import { Loading } from "./components/common";
import { FeedHub } from "./feedhub";
import { type Session, SessionContext, useSession } from "./hooks";
import { AgentsPage } from "./pages/Agents";
import { DashboardPage } from "./pages/Dashboard";
import { FlowPage } from "./pages/Flow";
import { FlowsPage } from "./pages/Flows";
import { NotFoundPage } from "./pages/NotFound";
import { RunPage } from "./pages/Run";
import { SettingsPage } from "./pages/Settings";
import { SignIn } from "./pages/SignIn";
import { TeamPage } from "./pages/Team";
import { ME, type Me } from "./queries";
import { type Route, href, onLinkClick, useLocation } from "./router";
import { storeKey, storedKey, storedMe } from "./session";

/** Check a key with the server: its tenant and role, or a message saying why not. */
export async function checkKey(key: string): Promise<{ api: Api; me: Me }> {
  const api = new Api(key.trim());
  const { me } = await api.query<{ me: Me }>(ME);
  if (me.role === "agent") {
    throw new ApiError("An agent key can only pull work and report; sign in with an admin, user or read-only key.", "FORBIDDEN");
  }
  return { api, me };
}

const unreachable = (err: unknown): boolean => err instanceof ApiError && err.code === "UNREACHABLE";

/** The session this tab signed in with, if its tenant and role are known already. */
function remembered(): { api: Api; me: Me } | null {
  const key = storedKey();
  const me = storedMe();
  return key && me ? { api: new Api(key), me } : null;
}

export function App() {
  const [session, setSession] = useState<{ api: Api; me: Me } | null>(remembered);
  const [checking, setChecking] = useState(() => storedKey() !== null && session === null);
  const [notice, setNotice] = useState<string | null>(null);

  const signOut = (message: string | null = null): void => {
    storeKey(null);
    setSession(null);
    setNotice(message);
  };

  // Check the stored key again (it may have been revoked); a page already shown stays
  // unless the server refuses the key.
  useEffect(() => {
    const key = storedKey();
    if (!key) return;
    checkKey(key).then(
      (s) => {
        storeKey(key, s.me);
        setSession((current) => (current && current.me.role === s.me.role ? current : s));
      },
      (err) => (unreachable(err) ? setNotice(signInMessage(err)) : signOut(signInMessage(err))),
    ).finally(() => setChecking(false));
  }, []);

  useEffect(() => {
    document.addEventListener("click", onLinkClick);
    return () => document.removeEventListener("click", onLinkClick);
  }, []);

  if (session) session.api.onUnauthenticated = (err) => signOut(signInMessage(err));

  const value = useMemo<Session | null>(
    () => (session ? { ...session, hub: new FeedHub(session.api), signOut: () => signOut(null) } : null),
    [session],
  );
  useEffect(() => () => value?.hub.close(), [value]);

  if (checking) return <Loading what="Checking your key" />;
  if (!value) {
    return (
      <SignIn
        notice={notice}
        onSignIn={async (key) => {
          const s = await checkKey(key);
          storeKey(key.trim(), s.me);
          setNotice(null);
          setSession(s);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={value}>
      <Shell />
    </SessionContext.Provider>
  );
}

const NAV: { label: string; route: Route; admin?: boolean }[] = [
  { label: "Dashboard", route: { page: "dashboard" } },
  { label: "Flows", route: { page: "flows" } },
  { label: "Agents", route: { page: "agents" } },
  { label: "Team", route: { page: "team" } },
  { label: "Settings", route: { page: "settings" }, admin: true },
];

const section = (route: Route): string =>
  route.page === "flow" || route.page === "run" ? "flows" : route.page;

function Shell() {
  const { route, query } = useLocation();
  const session = useSession();
  return (
        <div class="ui-shell">
          <a class="ui-skip" href="#main">
            Skip to content
          </a>
          <header class="ui-top">
            <a class="ui-brand" href="/">
              nbflow
            </a>
            <nav aria-label="Main">
              {NAV.filter((n) => !n.admin || session.me.role === "admin").map((n) => (
                <a
                  key={n.label}
                  href={href(n.route)}
                  aria-current={section(route) === n.route.page ? "page" : undefined}
                >
                  {n.label}
                </a>
              ))}
            </nav>
            <span class="ui-whoami">
              <span title="tenant">{session.me.tenantName}</span>
              <span class="ui-role" data-role={session.me.role}>
                {session.me.role}
              </span>
              <button type="button" class="ui-link-button" onClick={() => session.signOut()}>
                Sign out
              </button>
            </span>
          </header>
          <main id="main" tabIndex={-1}>
            <Page route={route} query={query} />
          </main>
        </div>
  );
}

function Page({ route, query }: { route: Route; query: URLSearchParams }) {
  switch (route.page) {
    case "dashboard":
      return <DashboardPage />;
    case "flows":
      return <FlowsPage />;
    case "flow":
      return <FlowPage key={route.name} name={route.name} query={query} />;
    case "run":
      return <RunPage key={route.id} id={route.id} query={query} />;
    case "agents":
      return <AgentsPage />;
    case "team":
      return <TeamPage />;
    case "settings":
      return <SettingsPage />;
    case "not-found":
      return <NotFoundPage path={route.path} />;
  }
}
