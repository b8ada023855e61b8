from __future__ import annotations

import json
from datetime import timedelta

import pytest

from nbflow import Flow, Parameter, Task, task
from nbflow.core.errors import CycleError, GraphError, NbflowError, ParameterError, UnknownTaskError


def _t(name: str) -> Task:
    return Task(lambda **_: name, name=name)


def test_functional_api_builds_edges_from_arguments() -> None:
    @task
    def extract(n: int) -> list[int]:
        return list(range(n))

    @task
    def load(rows: list[int], label: str) -> str:
        return f"{label}:{sum(rows)}"

    with Flow("etl") as flow:
        n = Parameter("n", default=3)
        out = load(extract(n), label="total")

    assert [t.slug for t in flow.sorted_tasks()] == ["n", "extract", "load"]
    assert {(e.upstream.slug, e.downstream.slug, e.key) for e in flow.edges} == {
        ("n", "extract", "n"),
        ("extract", "load", "rows"),
    }
    assert flow.constants[out] == {"label": "total"}
    state = flow.run(parameters={"n": 4})
    assert state.is_successful()
    assert state.result[out].result == "total:6"


def test_calling_a_task_twice_gives_two_bound_copies_with_unique_slugs() -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    with Flow("twice") as flow:
        a = inc(1)
        b = inc(a)
    assert a is not b and a is not inc
    assert (a.slug, b.slug) == ("inc", "inc-2")
    assert flow.run().result[b].result == 3


def test_task_outside_a_flow_is_its_function() -> None:
    @task
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5


def test_bad_call_names_the_task_and_signature() -> None:
    @task
    def add(a: int, b: int) -> int:
        return a + b

    with (
        Flow("bad"),
        pytest.raises(GraphError, match=r"task 'add'\(a, b\): missing a required argument: 'b'"),
    ):
        add(1)


def test_plain_api_add_task_add_edge_and_upstream_tasks() -> None:
    flow = Flow("plain")
    a, b, c = _t("a"), _t("b"), _t("c")
    flow.add_task(a)
    flow.add_edge(a, b)
    flow.set_dependencies(c, upstream_tasks=[a], keyword_tasks={"x": b})
    assert flow.upstream_tasks(c) == [a, b]
    assert flow.downstream_tasks(a) == [b, c]
    assert flow.root_tasks() == [a]
    assert flow.terminal_tasks() == [c]
    assert flow.ancestors([c]) == {a, b, c}
    assert flow.descendants([b]) == {b, c}


def test_cycle_is_an_error_that_names_the_cycle() -> None:
    flow = Flow("loop")
    a, b, c, d = _t("a"), _t("b"), _t("c"), _t("d")
    flow.add_edge(d, a)
    flow.add_edge(a, b)
    flow.add_edge(b, c)
    flow.add_edge(c, a)
    with pytest.raises(CycleError) as info:
        flow.validate()
    assert info.value.cycle in (["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])
    assert "has a cycle: " in str(info.value)
    assert " -> ".join(info.value.cycle) in str(info.value)
    with pytest.raises(CycleError):
        flow.run()


def test_self_edge_is_rejected() -> None:
    a = _t("a")
    with pytest.raises(CycleError, match="cannot depend on itself"):
        Flow("self").add_edge(a, a)


def test_one_input_fed_by_two_tasks_is_an_error() -> None:
    flow = Flow("dup")
    a, b, c = _t("a"), _t("b"), _t("c")
    flow.add_edge(a, c, key="x")
    with pytest.raises(GraphError, match="input 'x' of task 'c' is already fed by 'a'"):
        flow.add_edge(b, c, key="x")
    flow.add_edge(a, c)  # only ordering: another edge from the same task
    flow.add_edge(b, c, key="y")
    with pytest.raises(GraphError, match="input 'y' of task 'c' is already fed by 'b'"):
        flow.add_edge(a, c, key="y")
    assert [(e.upstream.slug, e.key) for e in flow.upstream_edges(c)] == [("a", "x"), ("a", None), ("b", "y")]


def test_unknown_parameter_lists_the_known_ones() -> None:
    with Flow("p") as flow:
        Parameter("start", default="2024-01-01")
        Parameter("region", default="eu")
    with pytest.raises(ParameterError) as info:
        flow.run(parameters={"strat": "2024-02-01"})
    assert "unknown parameter 'strat'" in str(info.value)
    assert "this flow's parameters are: start, region" in str(info.value)
    assert info.value.known == ["start", "region"]


def test_required_parameter_must_be_given() -> None:
    with Flow("p") as flow:
        Parameter("token")
    with pytest.raises(ParameterError, match="parameter 'token' is required"):
        flow.run()


def test_parameter_defaults_must_be_json() -> None:
    with pytest.raises(ParameterError, match="not JSON-serialisable"):
        Parameter("when", default=object())


def test_duplicate_parameter_names_are_an_error() -> None:
    with Flow("p"):
        Parameter("x", default=1)
        with pytest.raises(GraphError, match="already has a parameter or task named 'x'"):
            Parameter("x", default=2)


def test_get_task_by_slug_or_name() -> None:
    flow = Flow("g", tasks=[_t("a"), _t("b")])
    assert flow.get_task("b").name == "b"
    with pytest.raises(UnknownTaskError, match="has no task 'z'; its tasks: a, b"):
        flow.get_task("z")


def test_structure_is_json_and_holds_no_code_or_data() -> None:
    secret = "SECRET-VALUE-123"

    @task(retries=2, retry_delay=1, timeout=5, cache_for=60, tags=["io"], trigger="all_finished")
    def fetch(n: int) -> str:
        return secret

    with Flow("s") as flow:
        fetch(Parameter("n", default=2))
    structure = flow.structure()
    text = json.dumps(structure)
    assert secret not in text and "def fetch" not in text
    fetch_entry = structure["tasks"][1]
    assert fetch_entry == {
        "slug": "fetch",
        "name": "fetch",
        "kind": "task",
        "order": 1,
        "options": {
            "retries": 2,
            "retry_delay": 1.0,
            "timeout": 5.0,
            "trigger": "all_finished",
            "cache_for": 60.0,
            "tags": ["io"],
        },
        "upstream": ["n"],
    }
    assert structure["edges"] == [{"upstream": "n", "downstream": "fetch", "key": "n"}]
    assert structure["parameters"] == [{"name": "n", "default": 2, "required": False}]
    assert structure["schedule"] is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be a whole number"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"timeout": 0}, "timeout must be more than 0"),
        ({"retry_delay": -2}, "retry_delay must not be negative"),
        ({"cache_for": "soon"}, "cache_for must be a number of seconds"),
        ({"retries": True}, "retries must be a whole number"),
        ({"retry_delay": False}, "retry_delay must be a number of seconds"),
        ({"timeout": timedelta(0)}, "timeout must be more than 0"),
    ],
)
def test_bad_task_options_name_the_task_and_field(options: dict, message: str) -> None:
    with pytest.raises(NbflowError, match=message) as info:
        Task(lambda: None, name="fetch", **options)
    assert "task 'fetch'" in str(info.value)


def test_an_unknown_task_option_is_an_error_naming_it() -> None:
    with pytest.raises(TypeError, match="task 'fetch': unknown option 'retires'; the options are: retries,"):
        Task(lambda: None, name="fetch", retires=2)  # type: ignore[call-arg]


def test_sorted_tasks_keeps_insertion_order_among_independent_tasks() -> None:
    flow = Flow("order")
    names = ["z", "y", "x", "w"]
    tasks = [_t(n) for n in names]
    for t in tasks:
        flow.add_task(t)
    flow.add_edge(tasks[3], tasks[0])  # w -> z
    assert [t.slug for t in flow.sorted_tasks()] == ["y", "x", "w", "z"]


def test_default_options_read_the_same_on_every_task_and_given_ones_stay_per_task() -> None:
    plain = Task(lambda: None, name="plain")
    given = Task(
        lambda: None,
        name="given",
        retries=3,
        retry_delay=timedelta(seconds=2),
        timeout=7,
        trigger="any_failed",
        cache_for=0.5,
        tags=["io"],
        skip_on_upstream_skip=False,
    )
    assert plain.options() == {
        "retries": 0,
        "retry_delay": 0.0,
        "timeout": None,
        "trigger": "all_successful",
        "cache_for": None,
        "tags": [],
    }
    assert plain.skip_on_upstream_skip is True and plain.state_handlers == ()
    assert given.options() == {
        "retries": 3,
        "retry_delay": 2.0,
        "timeout": 7.0,
        "trigger": "any_failed",
        "cache_for": 0.5,
        "tags": ["io"],
    }
    assert given.skip_on_upstream_skip is False
    copied = given.copy(retries=1)
    assert (copied.retries, copied.timeout, copied.trigger) == (1, 7.0, given.trigger)
    assert Task(lambda: None, name="again").options() == plain.options()


def test_edges_of_a_task_with_one_or_several_and_repeated_edges() -> None:
    flow = Flow("shape")
    a, b, c, d = _t("a"), _t("b"), _t("c"), _t("d")
    first = flow.add_edge(a, b, key="x")
    assert flow.add_edge(a, b, key="x") == first  # the same edge again is not a second one
    assert list(flow.upstream_edges(b)) == [first] and list(flow.downstream_edges(a)) == [first]
    flow.add_edge(a, c)
    flow.add_edge(b, c, key="y")
    flow.add_edge(a, c)
    assert [(e.upstream.slug, e.key) for e in flow.upstream_edges(c)] == [("a", None), ("b", "y")]
    assert [e.downstream.slug for e in flow.downstream_edges(a)] == ["b", "c"]
    assert list(flow.upstream_edges(a)) == [] and list(flow.downstream_edges(c)) == []
    assert len(flow.edges) == 3
    assert flow.root_tasks() == [a] and flow.terminal_tasks() == [c]
    assert flow.ancestors([c]) == {a, b, c} and flow.descendants([b]) == {b, c}
    assert [t.slug for t in flow.sorted_tasks()] == ["a", "b", "c"]
    flow.add_edge(d, a)  # d was added last but must now run first
    assert [t.slug for t in flow.sorted_tasks()] == ["d", "a", "b", "c"]
    assert flow.run(echo=False).is_successful()


def test_a_tasks_edges_follow_edges_added_after_they_were_asked_for() -> None:
    a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
    flow = Flow("grow", tasks=[a, b, c])
    assert flow.upstream_edges(c) == () and flow.downstream_edges(a) == ()
    flow.add_edge(a, c, key="x")
    assert [(e.upstream, e.key) for e in flow.upstream_edges(c)] == [(a, "x")]
    flow.add_edge(b, c, key="y")
    assert [(e.upstream, e.key) for e in flow.upstream_edges(c)] == [(a, "x"), (b, "y")]
    assert [e.downstream for e in flow.downstream_edges(a)] == [c]
    assert flow.upstream_tasks(c) == [a, b]
