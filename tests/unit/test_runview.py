"""RunView: the one fold of a run's records that the kernel, widget, progress and demo read."""

from __future__ import annotations

import json

from nbflow import EventStream, Flow, Parameter, task
from nbflow.core.record import LogRecord, StateRecord, new_id, record_from_wire
from nbflow.core.runview import RunView


@task
def load(n):
    print(f"loading {n}")
    return list(range(n))


@task(retries=1)
def flaky(rows):
    flaky.calls = getattr(flaky, "calls", 0) + 1
    if flaky.calls == 1:
        raise ConnectionError("first try")
    return len(rows)


def run_records(flow: Flow, **kwargs: object) -> list:
    records: list = []
    stream = EventStream()
    stream.subscribe(records.extend)
    flow.run(stream=stream, echo=False, **kwargs)
    return records


def state(run: str, task: str | None, name: str, **extra: object) -> StateRecord:
    return StateRecord(
        flow_run_id=run,
        state=name,
        transition_id=new_id(),
        timestamp=1.0,
        task=task,
        task_run_id=f"{run}-{task}" if task else None,
        **extra,  # type: ignore[arg-type]
    )


def test_records_from_the_feed_fold_like_records_from_the_engine() -> None:
    flaky.calls = 0
    with Flow("etl") as flow:
        flaky(load(Parameter("n", 3)))
    records = run_records(flow)
    local, remote = RunView(), RunView()
    local.observe(records)
    remote.observe([record_from_wire(json.loads(json.dumps(r.to_wire()))) for r in records])
    slugs = ["n", "load", "flaky"]
    assert local.snapshot(slugs) == remote.snapshot(slugs)
    assert local.snapshot(slugs)["tasks"]["flaky"]["attempt"] == 2
    assert [line.message for line in remote.latest("load").logs] == ["loading 3"]
    assert remote.run is not None and remote.run.state == "Success"


def test_a_new_run_makes_untouched_tasks_pending_but_keeps_their_latest_state() -> None:
    view = RunView()
    view.observe([state("r1", None, "Running"), state("r1", "a", "Success"), state("r1", "b", "Success")])
    view.observe([state("r1", None, "Success")])
    # A second run that only touches "a" (like %flow run --to a):
    view.observe([state("r2", None, "Running"), state("r2", "a", "Running")])
    assert view.current("b").state == "Pending"  # the widget draws the current run
    assert view.latest("b").state == "Success"  # %flow status shows what b last did
    assert view.counts(["a", "b"]) == {"Running": 1, "Pending": 1}
    # The run ends without b: b was not part of it, so it is not Pending any more.
    view.observe([state("r2", "a", "Success"), state("r2", None, "Success")])
    assert view.current("b") is None
    assert view.snapshot(["a", "b"])["tasks"].keys() == {"a"}
    assert view.counts(["a", "b"]) == {"Success": 1}
    assert view.latest("b").state == "Success"


def test_a_task_run_keeps_only_its_newest_log_lines() -> None:
    view = RunView(max_logs=3)
    view.observe([state("r", "a", "Running")])
    view.observe(
        [LogRecord("r", "INFO", f"line {i}", float(i), task_run_id="r-a", task="a", seq=i) for i in range(10)]
    )
    assert [line.message for line in view.latest("a").logs] == ["line 7", "line 8", "line 9"]
    # A new task run of the same task starts with no lines.
    view.observe([StateRecord(flow_run_id="r", state="Running", transition_id="x", timestamp=2.0, task="a",
                              task_run_id="r-a2")])  # fmt: skip
    assert list(view.latest("a").logs) == []


def test_observe_says_whether_a_state_changed() -> None:
    view = RunView()
    assert view.observe([LogRecord("r", "INFO", "hi", 1.0, task="a")]) is False
    assert view.observe([state("r", "a", "Running")]) is True


def test_durations_run_from_the_first_running_to_the_final_state() -> None:
    view = RunView()
    view.observe(
        [
            StateRecord(
                flow_run_id="r", state="Running", transition_id="1", timestamp=10.0, task="a", attempt=1
            ),
            StateRecord(
                flow_run_id="r", state="Retrying", transition_id="2", timestamp=11.0, task="a", attempt=1
            ),
            StateRecord(
                flow_run_id="r", state="Running", transition_id="3", timestamp=12.0, task="a", attempt=2
            ),
            StateRecord(
                flow_run_id="r", state="Success", transition_id="4", timestamp=14.5, task="a", attempt=2
            ),
        ]
    )
    task_view = view.latest("a")
    assert (task_view.started, task_view.ended, task_view.duration, task_view.attempt) == (10.0, 14.5, 4.5, 2)
