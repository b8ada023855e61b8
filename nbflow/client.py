"""httpx client of the nbflow server's GraphQL API, sync (``Client``) and async (``AsyncClient``).

Every method builds an operation from ``nbflow.client_ops`` and returns a typed
result. Errors are ``TransportError`` (server unreachable, after retries with
backoff), ``AuthError`` (missing, wrong, revoked key or a role that may not do
it) and ``APIError`` (the server refused the request, with its message).
Only connection failures are retried: a request that never reached the server
cannot have done anything twice.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import httpx

from nbflow import client_ops as ops
from nbflow._version import __version__
from nbflow.config import resolve
from nbflow.core.errors import APIError, AuthError, TransportError

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

P = ParamSpec("P")
T = TypeVar("T")
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client of this process: building one reads the CA
    bundle (~0.1 s), too slow to pay per client in a flow process that lives for one run."""
    return httpx.create_ssl_context()


def _decode(url: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise APIError(
            f"the server at {url} answered {response.status_code} without JSON: {response.text[:200]!r}"
        ) from None
    errors = body.get("errors") if isinstance(body, dict) else None
    if response.status_code in (401, 403):
        message = errors[0]["message"] if errors else response.reason_phrase
        raise AuthError(f"{message} (server {url})")
    if errors:
        first = errors[0]
        code = (first.get("extensions") or {}).get("code")
        if code == "FORBIDDEN":
            raise AuthError(first["message"])
        raise APIError(first["message"], errors=errors)
    if response.status_code >= 400 or not isinstance(body, dict) or "data" not in body:
        raise APIError(f"the server at {url} answered {response.status_code}: {response.text[:200]!r}")
    return body["data"]


class _Base:
    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        config = resolve(url, key)
        self.url = config.url
        self.key = config.key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"User-Agent": f"nbflow/{__version__}"}
        if self.key:
            self.headers["Authorization"] = f"Bearer {self.key}"

    def _unreachable(self, exc: Exception) -> TransportError:
        return TransportError(
            f"cannot reach the nbflow server at {self.url} ({type(exc).__name__}: {exc}); "
            "is it running? start one with `nbflow server start`"
        )


def _sync(factory: Callable[P, ops.Operation[T]]) -> Callable[Concatenate[Client, P], T]:
    @functools.wraps(factory)
    def method(self: Client, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.execute(factory(*args, **kwargs))

    return method


def _async(factory: Callable[P, ops.Operation[T]]) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]:
    @functools.wraps(factory)
    async def method(self: AsyncClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.execute(factory(*args, **kwargs))

    return method


class Client(_Base):
    """Blocking client (notebooks, the CLI, the agent's flow subprocess)."""

    def __init__(self, url: str | None = None, key: str | None = None, **kwargs: Any) -> None:
        transport = kwargs.pop("transport", None)
        super().__init__(url, key, **kwargs)
        self._http = httpx.Client(
            base_url=self.url,
            headers=self.headers,
            timeout=self.timeout,
            transport=transport,
            verify=tls_context(),
        )
        # Parsed once: httpx parses a string URL and merges it with the base on every request.
        self._endpoint = self._http.base_url.join("graphql")

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST one GraphQL document; the ``data``, or a ``ClientError``."""
        payload = {"query": query, "variables": variables or {}}
        for attempt in range(self.retries + 1):
            try:
                response = self._http.post(self._endpoint, json=payload, timeout=timeout or self.timeout)
                return _decode(self.url, response)
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise self._unreachable(exc) from None
                time.sleep(self.backoff * 2**attempt)
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
        raise AssertionError("unreachable")

    def execute(self, op: ops.Operation[T], *, timeout: float | None = None) -> T:
        """Run an operation and parse its answer."""
        return op.parse(self.graphql(op.query, op.variables, timeout=timeout))

    def health(self) -> dict[str, Any]:
        """The server's ``/health`` answer."""
        try:
            return self._http.get("/health").json()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def events(
        self, *, flow_run_id: str | None = None, cursor: str | None = None, from_start: bool = False
    ) -> Any:
        """The live feed (server-sent events): yields ``(cursor, [event, ...])`` batches."""
        import json

        params = {
            k: v
            for k, v in {
                "flow_run_id": flow_run_id,
                "cursor": cursor,
                "from": "start" if from_start else None,
            }.items()
            if v
        }
        try:
            with self._http.stream(
                "GET", "/events", params=params, timeout=httpx.Timeout(10, read=60)
            ) as response:
                if response.status_code in (401, 403):
                    raise AuthError(f"the live feed refused the key (server {self.url})")
                if response.status_code != 200:  # e.g. 503 UNAVAILABLE: its JSON error says why
                    response.read()
                    _decode(self.url, response)
                position, kind = cursor, "batch"
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        position = line[4:]
                    elif line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        if kind == "error":  # the server ended the stream (e.g. the key was revoked)
                            raise AuthError(f"the live feed ended: {data.get('message')} (server {self.url})")
                        yield position, data
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    me = _sync(ops.me)
    register_flow = _sync(ops.register_flow)
    create_flow_run = _sync(ops.create_flow_run)
    flows = _sync(ops.flows)
    flow = _sync(ops.flow)
    flow_runs = _sync(ops.flow_runs)
    flow_run = _sync(ops.flow_run)
    run_logs = _sync(ops.run_logs)
    flow_run_structure = _sync(ops.flow_run_structure)
    cancel_flow_run = _sync(ops.cancel_flow_run)
    restart_flow_run = _sync(ops.restart_flow_run)
    restart_sources = _sync(ops.restart_sources)
    set_schedule_active = _sync(ops.set_schedule_active)
    set_flow_run_states = _sync(ops.set_flow_run_states)
    set_task_run_states = _sync(ops.set_task_run_states)
    write_run_logs = _sync(ops.write_run_logs)
    heartbeat = _sync(ops.heartbeat)
    register_agent = _sync(ops.register_agent)
    create_api_key = _sync(ops.create_api_key)
    revoke_api_key = _sync(ops.revoke_api_key)
    api_keys = _sync(ops.api_keys)

    def get_runs_in_queue(
        self, labels: list[str] | tuple[str, ...] = (), *, limit: int = 10, wait: float = 0.0
    ) -> list[ops.FlowRunInfo]:
        """Due runs for these labels, waiting up to ``wait`` seconds for one (long-poll)."""
        return self.execute(
            ops.get_runs_in_queue(labels, limit=limit, wait=wait), timeout=self.timeout + wait
        )


class AsyncClient(_Base):
    """Non-blocking client (the agent loop, async applications)."""

    def __init__(self, url: str | None = None, key: str | None = None, **kwargs: Any) -> None:
        transport = kwargs.pop("transport", None)
        super().__init__(url, key, **kwargs)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=self.headers,
            timeout=self.timeout,
            transport=transport,
            verify=tls_context(),
        )
        self._endpoint = self._http.base_url.join("graphql")  # parsed once, as in Client

    async def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a per-request HTTP timeout
    ) -> dict[str, Any]:
        """POST one GraphQL document; the ``data``, or a ``ClientError``."""
        payload = {"query": query, "variables": variables or {}}
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.post(
                    self._endpoint, json=payload, timeout=timeout or self.timeout
                )
                return _decode(self.url, response)
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise self._unreachable(exc) from None
                await asyncio.sleep(self.backoff * 2**attempt)
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
        raise AssertionError("unreachable")

    async def execute(self, op: ops.Operation[T], *, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """Run an operation and parse its answer."""
        return op.parse(await self.graphql(op.query, op.variables, timeout=timeout))

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    me = _async(ops.me)
    register_flow = _async(ops.register_flow)
    create_flow_run = _async(ops.create_flow_run)
    flows = _async(ops.flows)
    flow = _async(ops.flow)
    flow_runs = _async(ops.flow_runs)
    flow_run = _async(ops.flow_run)
    run_logs = _async(ops.run_logs)
    flow_run_structure = _async(ops.flow_run_structure)
    cancel_flow_run = _async(ops.cancel_flow_run)
    restart_flow_run = _async(ops.restart_flow_run)
    set_schedule_active = _async(ops.set_schedule_active)
    set_flow_run_states = _async(ops.set_flow_run_states)
    set_task_run_states = _async(ops.set_task_run_states)
    write_run_logs = _async(ops.write_run_logs)
    heartbeat = _async(ops.heartbeat)
    register_agent = _async(ops.register_agent)
    create_api_key = _async(ops.create_api_key)
    revoke_api_key = _async(ops.revoke_api_key)
    api_keys = _async(ops.api_keys)

    async def get_runs_in_queue(
        self, labels: list[str] | tuple[str, ...] = (), *, limit: int = 10, wait: float = 0.0
    ) -> list[ops.FlowRunInfo]:
        """Due runs for these labels, waiting up to ``wait`` seconds for one (long-poll)."""
        return await self.execute(
            ops.get_runs_in_queue(labels, limit=limit, wait=wait), timeout=self.timeout + wait
        )
