from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import pytest

from nbflow import Flow, Parameter, StateType, Task, task
from nbflow.core.cache import MISSING, ResultStore, cache_key

if TYPE_CHECKING:
    from pathlib import Path

S = StateType

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from nbflow import Flow, Parameter, task

    counter = Path(sys.argv[1])

    @task(cache_for=600)
    def expensive(n):
        counter.write_text(str(int(counter.read_text() or 0) + 1))
        return {"total": n * 100}

    with Flow("cached") as flow:
        out = expensive(Parameter("n", default=int(sys.argv[2])))

    state = flow.run()
    final = state.result[out]
    print(final.type.value, final.result["total"])
    """
)


def run_script(script: Path, counter: Path, n: int) -> str:
    done = subprocess.run(
        [sys.executable, str(script), str(counter), str(n)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_cache_survives_a_new_process(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    counter = tmp_path / "calls.txt"
    counter.write_text("0")
    assert run_script(script, counter, 3) == "Success 300"
    assert run_script(script, counter, 3) == "Cached 300"
    assert counter.read_text() == "1"
    # Different parameters: a different key, so it runs.
    assert run_script(script, counter, 4) == "Success 400"
    assert counter.read_text() == "2"


def _counting_flow(calls: list[int], cache_for: float = 600) -> tuple[Flow, Task]:
    @task(cache_for=cache_for)
    def compute(x: int) -> int:
        calls.append(x)
        return x * 2

    with Flow("c") as flow:
        out = compute(Parameter("x", default=1))
    return flow, out


def test_cached_state_restores_the_value_without_running() -> None:
    calls: list[int] = []
    flow, out = _counting_flow(calls)
    first = flow.run()
    second = flow.run()
    assert first.result[out].type is S.SUCCESS
    assert second.result[out].type is S.CACHED
    assert second.result[out].result == 2
    assert second.result[out].result_ref == first.result[out].result_ref
    assert calls == [1]
    assert second.is_successful()


def test_changing_inputs_misses_the_cache() -> None:
    calls: list[int] = []
    flow, out = _counting_flow(calls)
    flow.run(parameters={"x": 1})
    flow.run(parameters={"x": 2})
    assert calls == [1, 2]


def test_expired_entry_runs_again() -> None:
    calls: list[int] = []
    flow, out = _counting_flow(calls, cache_for=0.2)
    flow.run()
    time.sleep(0.3)
    assert flow.run().result[out].type is S.SUCCESS
    assert calls == [1, 1]


def test_no_cache_run_ignores_stored_results() -> None:
    calls: list[int] = []
    flow, out = _counting_flow(calls)
    flow.run()
    assert flow.run(cache=False).result[out].type is S.SUCCESS
    assert calls == [1, 1]


def test_changed_source_misses_the_cache() -> None:
    def v1(x: int) -> int:
        return x + 1

    def v2(x: int) -> int:
        return x + 2

    a = Task(v1, name="same_name", cache_for=600)
    b = Task(v2, name="same_name", cache_for=600)
    assert a.cache_source() != b.cache_source()
    assert cache_key(a.cache_source(), {"x": 1}, {}) != cache_key(b.cache_source(), {"x": 1}, {})


def test_unpicklable_inputs_are_not_cached_but_still_run() -> None:
    import threading

    calls: list[int] = []

    @task
    def make_lock() -> object:
        return threading.Lock()

    @task(cache_for=600)
    def use(lock: object) -> int:
        calls.append(1)
        return 1

    with Flow("u") as flow:
        out = use(make_lock())
    assert flow.run().result[out].type is S.SUCCESS
    assert flow.run().result[out].type is S.SUCCESS
    assert calls == [1, 1]


def test_corrupt_cache_file_is_a_miss(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, flow="etl")
    key = "ab" * 32
    assert store.put(key, {"v": 1}) is None
    assert store.get(key, 60) == {"v": 1}
    (tmp_path / "etl" / key[:2] / f"{key}.pkl").write_bytes(b"not a pickle")
    assert store.get(key, 60) is MISSING


def test_each_flow_has_its_own_cache_and_clear_forgets_it(tmp_path: Path) -> None:
    a, b = ResultStore(tmp_path, flow="a/b c"), ResultStore(tmp_path, flow="other")
    a.put("cd" * 32, 1)
    b.put("cd" * 32, 2)
    assert (a.get("cd" * 32, 60), b.get("cd" * 32, 60)) == (1, 2)
    assert a.clear() == 1
    assert a.get("cd" * 32, 60) is MISSING
    assert b.get("cd" * 32, 60) == 2


def test_unpicklable_result_is_not_cached_and_says_why() -> None:
    import threading

    from nbflow import EventStream

    @task(cache_for=600)
    def make_lock() -> object:
        return threading.Lock()

    stream = EventStream()
    events: list = []
    stream.subscribe(events.extend)
    state = Flow("locks", tasks=[make_lock]).run(stream=stream)
    assert state.result[make_lock].type is S.SUCCESS
    assert state.result[make_lock].result_ref is None
    warnings = [e.message for e in events if e.kind == "log" and e.level == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("result not cached: the result cannot be pickled")


@pytest.mark.parametrize("value", [[1, 2], {"a": (1, 2)}, "text", 3.5, None])
def test_key_is_stable_for_equal_values(value: object) -> None:
    assert cache_key("src", {"v": value}, {"p": 1}) == cache_key("src", {"v": value}, {"p": 1})
    assert cache_key("src", {"v": value}, {"p": 1}) != cache_key("src", {"v": value}, {"p": 2})
