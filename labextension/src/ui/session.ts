/**
 * The API key lives in this browser tab's session storage: entered once, gone
 * when the tab closes, never put in a URL. The key's tenant and role (from
 * `{ me }`) are kept beside it, so a page load shows the page at once while
 * the key is checked again in the background.
 */
import type { Me } from "./queries";

const KEY = "nbflow.apiKey";
const ME = "nbflow.me";

export function storedKey(): string | null {
  try {
    return window.sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storedMe(): Me | null {
  try {
    const raw = window.sessionStorage.getItem(ME);
    const me = raw ? (JSON.parse(raw) as Me) : null;
    return me && typeof me.role === "string" && typeof me.tenantName === "string" ? me : null;
  } catch {
    return null;
  }
}

export function storeKey(key: string | null, me: Me | null = null): void {
  try {
    if (key) window.sessionStorage.setItem(KEY, key);
    else window.sessionStorage.removeItem(KEY);
    if (key && me) window.sessionStorage.setItem(ME, JSON.stringify(me));
    else window.sessionStorage.removeItem(ME);
  } catch {
    // Storage disabled: the key lasts as long as the page.
  }
}
