/**
 * GraphQL over fetch with the session's key in the Authorization header.
 * Errors become an ApiError whose message is the server's own (they say what
 * was wrong and what to do), with its code (UNAUTHENTICATED, FORBIDDEN, ...).
 */

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string | null = null,
    readonly status = 0,
  ) {
    super(message);
    this.name = "ApiError";
  }

  get unauthenticated(): boolean {
    return this.code === "UNAUTHENTICATED" || this.status === 401;
  }
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

export class Api {
  /** Called when the server refuses the key (revoked while signed in): the app signs out. */
  onUnauthenticated: ((error: ApiError) => void) | null = null;

  constructor(
    readonly key: string,
    private readonly base = "",
  ) {}

  headers(): Record<string, string> {
    return { Authorization: `Bearer ${this.key}` };
  }

  async query<T>(query: string, variables: Record<string, unknown> = {}, signal?: AbortSignal): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.base}/graphql`, {
        method: "POST",
        headers: { ...this.headers(), "Content-Type": "application/json" },
        body: JSON.stringify({ query, variables }),
        signal: signal ?? null,
      });
    } catch (err) {
      if ((err as Error)?.name === "AbortError") throw err;
      throw new ApiError("cannot reach the nbflow server: is it running?", "UNREACHABLE");
    }
    let body: { data?: T | null; errors?: GraphQLError[] } = {};
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`the server answered ${response.status} without a GraphQL body`, null, response.status);
    }
    const first = body.errors?.[0];
    if (first) {
      const error = new ApiError(first.message, first.extensions?.code ?? null, response.status);
      if (error.unauthenticated) this.onUnauthenticated?.(error);
      throw error;
    }
    if (!response.ok || body.data == null) {
      throw new ApiError(`the server answered ${response.status}`, null, response.status);
    }
    return body.data;
  }
}

/** What a person should read when the server refuses a key at sign-in. */
export function signInMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.unauthenticated) {
      return `The server refused this key (${error.message}). Check that you pasted the whole key, starting with nbf_, and that it was not revoked.`;
    }
    return error.message;
  }
  return String(error);
}
