from __future__ import annotations

import pytest

from nbflow import Flow, task
from nbflow.core import triggers
from nbflow.core.errors import NbflowError
from nbflow.core.states import State, StateType

S = StateType
OK, FAIL, SKIP, CACHED = State(S.SUCCESS), State(S.FAILED), State(S.SKIPPED), State(S.CACHED)

CASES = [
    # trigger, upstream states, fires
    ("all_successful", [OK, CACHED], True),
    ("all_successful", [OK, SKIP], True),
    ("all_successful", [OK, FAIL], False),
    ("all_successful", [], True),
    ("all_finished", [OK, FAIL, SKIP], True),
    ("all_finished", [], True),
    ("any_successful", [FAIL, OK], True),
    ("any_successful", [FAIL, FAIL], False),
    ("any_successful", [], True),
    ("any_failed", [OK, FAIL], True),
    ("any_failed", [OK, State(S.TIMED_OUT)], True),
    ("any_failed", [OK, State(S.TRIGGER_FAILED)], True),
    ("any_failed", [OK, OK], False),
    ("any_failed", [], False),
    ("all_failed", [FAIL, State(S.TIMED_OUT)], True),
    ("all_failed", [FAIL, OK], False),
    ("manual_only", [OK], False),
    ("manual_only", [], False),
]


@pytest.mark.parametrize(("name", "states", "fires"), CASES)
def test_trigger_table(name: str, states: list[State], fires: bool) -> None:
    fn = triggers.resolve(name)
    assert fn is getattr(triggers, name)
    assert fn(states) is fires


def test_unknown_trigger_names_the_choices() -> None:
    with pytest.raises(NbflowError, match="unknown trigger 'sometimes'; use one of: all_successful"):
        triggers.resolve("sometimes")


def _flow_with_failure(trigger: object) -> tuple[Flow, object]:
    @task
    def boom() -> None:
        raise RuntimeError("source down")

    @task
    def fine() -> int:
        return 1

    @task(trigger=trigger)
    def after(a: object, b: object) -> str:
        return "ran"

    with Flow("t") as flow:
        out = after(boom(), fine())
    return flow, out


def test_upstream_failure_gives_trigger_failed_not_a_silent_skip() -> None:
    flow, out = _flow_with_failure("all_successful")
    state = flow.run()
    assert state.is_failed()
    task_state = state.result[out]
    assert task_state.type is S.TRIGGER_FAILED
    assert "boom failed" in task_state.message


def test_any_failed_cleanup_runs_on_failure_and_is_skipped_otherwise() -> None:
    flow, out = _flow_with_failure(triggers.any_failed)
    state = flow.run()
    assert state.result[out].type is S.SUCCESS
    assert state.result[out].result == "ran"

    @task
    def ok() -> int:
        return 1

    @task(trigger="any_failed")
    def cleanup(x: object) -> str:
        return "cleaned"

    with Flow("t2") as flow2:
        c = cleanup(ok())
    state2 = flow2.run()
    assert state2.is_successful()
    assert state2.result[c].type is S.SKIPPED


def test_all_finished_runs_after_failure() -> None:
    flow, out = _flow_with_failure(triggers.all_finished)
    assert flow.run().result[out].result == "ran"


def test_manual_only_never_runs_automatically() -> None:
    @task(trigger="manual_only")
    def deploy() -> str:
        return "deployed"

    flow = Flow("m", tasks=[deploy])
    state = flow.run()
    assert state.result[deploy].type is S.SKIPPED
    assert "manual_only" in state.result[deploy].message


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_manual_only_runs_when_the_run_targets_it(executor: str) -> None:
    @task
    def build() -> str:
        return "artifact"

    @task(trigger="manual_only")
    def deploy(what: str) -> str:
        return f"deployed {what}"

    with Flow("m") as flow:
        out = deploy(build())
    assert flow.run(executor=executor).result[out].type is S.SKIPPED
    targeted = flow.run(targets=[out], executor=executor)
    assert targeted.result[out].result == "deployed artifact"


def test_skip_propagates_through_default_trigger() -> None:
    @task
    def ok() -> int:
        return 1

    @task(trigger="any_failed")
    def alert(x: object) -> str:
        return "alert"

    @task
    def after_alert(y: object) -> str:
        return "never"

    with Flow("s") as flow:
        tail = after_alert(alert(ok()))
    state = flow.run()
    assert state.result[tail].type is S.SKIPPED
    assert "alert skipped" in state.result[tail].message


def test_custom_trigger_function() -> None:
    calls: list[int] = []

    def at_least_one_cached_or_ok(states: object) -> bool:
        calls.append(1)
        return True

    @task
    def boom() -> None:
        raise ValueError("x")

    @task(trigger=at_least_one_cached_or_ok)
    def after(x: object) -> str:
        return "ran anyway"

    with Flow("c") as flow:
        out = after(boom())
    state = flow.run()
    assert calls == [1]
    assert state.result[out].result == "ran anyway"
    assert flow.structure()["tasks"][1]["options"]["trigger"] == "at_least_one_cached_or_ok"
