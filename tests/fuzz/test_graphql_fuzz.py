"""GraphQL fuzzing against a real server process: generated requests and malformed bodies.

Queries and mutations are generated from the server's own schema by hypothesis-graphql,
valid ones and ones with one schema violation, sent with keys of every role; then
random bytes and random JSON. A client's mistake must get a clear error: never an
HTTP 5xx, never "internal error", and the server's memory stays flat.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import ONE_TASK_STORAGE as STORAGE  # noqa: E402
from server_helpers import ONE_TASK_STRUCTURE as STRUCTURE
from server_helpers import ServerProcess, fresh_postgres_database, log_line, postgres_url, task_change

from nbflow.server.schema import build_schema  # noqa: E402

pytestmark = [pytest.mark.fuzz, pytest.mark.integration, pytest.mark.slow]
EXAMPLES = 400  # per strategy: about 2,000 generated requests and 400 raw bodies
SCHEMA = str(build_schema())
# Long-polls (up to 30 s each) would turn fuzzing into waiting; they are fuzzed with short waits below.
FIELDS = [
    f
    for f in [*build_schema()._schema.query_type.fields, *build_schema()._schema.mutation_type.fields]  # type: ignore[union-attr]
    if f != "getRunsInQueue"
]


def _value_node(value: object) -> graphql.ValueNode:
    """A GraphQL literal for a JSON value (the ``JSON`` scalar's arguments)."""
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([_value_node(v) for v in value])
    assert isinstance(value, dict)
    fields = [
        graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=_value_node(v))
        for k, v in value.items()
    ]
    return nodes.Object(fields)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=4)
    ),
    max_leaves=12,
)


def _record_objects(wire: dict[str, object]) -> st.SearchStrategy[dict[str, object]]:
    """Objects shaped like a record (its camelCase fields, each kept, dropped or of any JSON
    value), and any JSON value: what a client of the record scalars could send."""
    camel = {"".join(w.title() if i else w for i, w in enumerate(k.split("_"))): v for k, v in wire.items()}
    shaped = st.fixed_dictionaries(
        {}, optional={k: st.just(v) | JSON_VALUES for k, v in camel.items() if k not in ("kind", "position")}
    )
    return shaped | JSON_VALUES


SCALARS = {
    "JSON": JSON_VALUES.map(_value_node),
    "TaskRunStateInput": _record_objects(task_change("r", "tr", "t", "Running")).map(_value_node),
    "LogInput": _record_objects(log_line("r", 1, "hello")).map(_value_node),
    "DateTime": (st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=30)).map(nodes.String),
}


class Fuzz:
    """Sends requests to one server and keeps the tally."""

    def __init__(self, server: ServerProcess, keys: list[str]) -> None:
        self.server = server
        self.keys = keys
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self.tally: Counter[str] = Counter()
        self.bad: list[str] = []

    def send(self, body: bytes, key_index: int = 0) -> None:
        key = self.keys[key_index % len(self.keys)]
        response = self.http.post(
            "/graphql",
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        self.tally["requests"] += 1
        self.tally[f"HTTP {response.status_code}"] += 1
        text = response.text
        if response.status_code >= 500 or "internal error" in text:
            self.bad.append(f"{response.status_code} {text[:300]} <- {body[:300]!r}")

    def rss_kb(self) -> int:
        assert self.server.proc is not None
        status = Path(f"/proc/{self.server.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Fuzz:
    home = tmp_path_factory.mktemp("fuzz-home")
    if postgres_url():  # the stricter database when there is one
        with fresh_postgres_database() as url:
            yield from _serve(home, url)
    else:
        yield from _serve(home, f"sqlite+aiosqlite:///{home / 'nbflow.db'}")


def _serve(home: Path, url: str):  # type: ignore[no-untyped-def]
    server = ServerProcess(home, url).start()
    try:
        with server.client() as admin:
            admin.register_flow("etl", STRUCTURE, STORAGE)
            run = admin.create_flow_run(flow_name="etl")
            admin.set_task_run_states([task_change(run.id, "t-1", "a", "Running")])
            admin.write_run_logs([log_line(run.id, 1, "hello", task="a")])
            keys = [
                server.admin_key or "",
                *(admin.create_api_key(role).key for role in ("user", "agent", "read-only")),
            ]
        yield Fuzz(server, keys)
    finally:
        server.stop()


def _as_body(document: str) -> bytes:
    return json.dumps({"query": document}).encode()


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE])
def test_generated_operations_never_get_a_server_error(fuzz: Fuzz, mode: Mode) -> None:
    @settings(
        max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        document=from_schema(SCHEMA, fields=FIELDS, custom_scalars=SCALARS, mode=mode), key=st.integers(0, 3)
    )
    def check(document: str, key: int) -> None:
        fuzz.send(_as_body(document), key)

    check()
    assert fuzz.bad == [], "\n".join(fuzz.bad[:10])


def test_the_long_poll_never_gets_a_server_error(fuzz: Fuzz) -> None:
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        labels=st.lists(st.text(max_size=30), max_size=5),
        limit=st.integers(-5, 200),
        wait=st.floats(-1, 0.2, allow_nan=False),
    )
    def check(labels: list[str], limit: int, wait: float) -> None:
        query = "mutation($l: [String!], $n: Int!, $w: Float!) { getRunsInQueue(labels: $l, limit: $n, wait: $w) { id } }"
        fuzz.send(json.dumps({"query": query, "variables": {"l": labels, "n": limit, "w": wait}}).encode(), 2)

    check()
    assert fuzz.bad == [], "\n".join(fuzz.bad[:10])


def test_random_bodies_and_variables_never_get_a_server_error(fuzz: Fuzz) -> None:
    documents = st.sampled_from(
        [
            "mutation($s: [TaskRunStateInput!]!) { setTaskRunStates(states: $s) { ok error } }",
            "mutation($l: [LogInput!]!) { writeRunLogs(logs: $l) }",
            "mutation($s: [FlowRunStateInput!]!) { setFlowRunStates(states: $s) { ok error } }",
            "mutation($i: CreateFlowRunInput!) { createFlowRun(input: $i) { created } }",
            "mutation($i: RegisterFlowInput!) { registerFlow(input: $i) { created } }",
            "query($id: String!) { flowRun(id: $id) { id logs { message } } }",
        ]
    )

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        body=st.one_of(
            st.binary(max_size=200),
            JSON_VALUES.map(lambda v: json.dumps(v).encode()),
            st.builds(lambda q, v: json.dumps({"query": q, "variables": v}).encode(), documents, JSON_VALUES),
        )
    )
    def check(body: bytes) -> None:
        fuzz.send(body)

    rss_before = fuzz.rss_kb()
    check()
    assert fuzz.bad == [], "\n".join(fuzz.bad[:10])
    grown = (fuzz.rss_kb() - rss_before) / 1024
    print(f"\nfuzz: {dict(fuzz.tally)}; server RSS grew {grown:.1f} MB over the last {EXAMPLES} requests")
    assert grown < 50, f"the server's memory grew {grown:.0f} MB while being fuzzed"
