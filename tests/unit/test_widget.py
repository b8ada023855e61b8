"""FlowWidget without a browser: what its traits hold, how often it syncs, how it answers messages."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nbflow import EventStream, Flow, Parameter, task
from nbflow.core.record import StateRecord, new_id
from nbflow.kernel import widget as widget_module
from nbflow.kernel.widget import FlowWidget

FIXTURE = Path(__file__).resolve().parents[2] / "labextension" / "test" / "fixtures" / "run-events.json"


@task
def load(n):
    print(f"loading {n}")
    return list(range(n))


@task
def total(rows):
    return sum(rows)


@task
def explode(rows):
    raise ValueError(f"cannot handle {len(rows)} rows")


def etl_flow() -> Flow:
    with Flow("etl") as flow:
        rows = load(Parameter("n", 3))
        total(rows)
        explode(rows)
    return flow


def run_into(widget: FlowWidget, flow: Flow) -> None:
    stream = EventStream()
    stream.subscribe(widget.observe)
    flow.run(stream=stream, echo=False)
    widget.flush()


class Sent:
    """Records what the widget sends to the front end."""

    def __init__(self, widget: FlowWidget, monkeypatch: pytest.MonkeyPatch) -> None:
        self.messages: list[dict[str, Any]] = []
        monkeypatch.setattr(widget, "send", lambda content, *_: self.messages.append(content))


def message(widget: FlowWidget, content: dict[str, Any]) -> None:
    """Deliver a message as the front end's model.send would."""
    widget._handle_custom_msg(content, [])


def state_event(task: str | None, state: str, run: str = "run-1", **extra: Any) -> dict[str, Any]:
    """A state change in wire form, as the server's live feed sends it."""
    return StateRecord(
        flow_run_id=run,
        task=task,
        task_run_id=f"{run}-{task}" if task else None,
        state=state,
        transition_id=new_id(),
        timestamp=time.time(),
        **extra,
    ).to_wire()


# -- traits --------------------------------------------------------------------


def test_graph_trait_is_the_flow_structure() -> None:
    flow = etl_flow()
    widget = FlowWidget(flow.structure())
    assert widget.graph == flow.structure()
    assert widget.states == {"run": None, "tasks": {}}


def test_states_after_a_real_run_show_each_task() -> None:
    widget = FlowWidget(etl_flow().structure())
    run_into(widget, etl_flow())
    states = widget.states
    assert states["run"]["state"] == "Failed"
    assert states["run"]["started"] <= states["run"]["ended"]
    tasks = states["tasks"]
    assert {slug: t["state"] for slug, t in tasks.items()} == {
        "n": "Success",
        "load": "Success",
        "total": "Success",
        "explode": "Failed",
    }
    assert tasks["explode"]["message"] == "ValueError: cannot handle 3 rows"
    assert tasks["load"]["attempt"] == 1
    assert tasks["load"]["started"] <= tasks["load"]["ended"]


def test_replaying_the_shared_fixture_gives_the_snapshot_the_js_side_checks() -> None:
    fixture = json.loads(FIXTURE.read_text())
    widget = FlowWidget(fixture["graph"])
    widget.observe(fixture["events"])
    widget.flush()
    assert widget.states == fixture["expected"]
    assert repr(widget) == fixture["repr"]


def test_a_new_run_resets_every_task_to_pending() -> None:
    widget = FlowWidget(etl_flow().structure())
    run_into(widget, etl_flow())
    widget.observe([state_event(None, "Running", run="run-2")])
    widget.flush()
    assert widget.states["run"]["flow_run_id"] == "run-2"
    assert widget.states["tasks"] == {
        slug: {"state": "Pending"} for slug in ("n", "load", "total", "explode")
    }


def test_snapshot_entries_leave_out_empty_fields() -> None:
    widget = FlowWidget({"name": "f", "tasks": [{"slug": "a", "name": "a"}], "edges": []})
    widget.observe([state_event(None, "Running"), state_event("a", "Submitted")])
    widget.flush()
    assert widget.states["tasks"]["a"] == {"state": "Submitted"}
    assert set(widget.states["run"]) == {"flow_run_id", "state", "started"}


# -- throttling ----------------------------------------------------------------


def count_syncs(widget: FlowWidget) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    widget.observe(lambda change: seen.append(change["new"]), names="states")
    return seen


def test_the_first_change_syncs_at_once() -> None:
    widget = FlowWidget({"name": "f", "tasks": [{"slug": "a", "name": "a"}], "edges": []})
    syncs = count_syncs(widget)
    widget.observe([state_event("a", "Running")])
    assert len(syncs) == 1


def test_a_burst_of_events_makes_few_syncs_and_the_last_state_arrives() -> None:
    slugs = [f"t{i}" for i in range(200)]
    widget = FlowWidget({"name": "big", "tasks": [{"slug": s, "name": s} for s in slugs], "edges": []})
    syncs = count_syncs(widget)
    widget.observe([state_event(None, "Running")])

    def emit() -> None:
        # ~1 s of events in 400 small batches, as the engine's dispatcher delivers them.
        for slug in slugs:
            widget.observe([state_event(slug, "Running", attempt=1)])
            time.sleep(0.0025)
            widget.observe([state_event(slug, "Success", attempt=1)])
            time.sleep(0.0025)

    started = time.monotonic()
    thread = threading.Thread(target=emit)
    thread.start()
    thread.join()
    elapsed = time.monotonic() - started
    time.sleep(widget_module.SYNC_INTERVAL * 2)  # the trailing sync, without flush()
    assert len(syncs) <= elapsed / widget_module.SYNC_INTERVAL + 3
    assert len(syncs) >= 2
    final = widget.states["tasks"]
    assert all(final[s]["state"] == "Success" for s in slugs)


def test_flush_syncs_now_and_a_flush_without_changes_sends_nothing() -> None:
    widget = FlowWidget({"name": "f", "tasks": [{"slug": "a", "name": "a"}], "edges": []})
    syncs = count_syncs(widget)
    widget.observe([state_event("a", "Running")])  # leading sync
    widget.observe([state_event("a", "Success")])  # waits for the interval
    assert widget.states["tasks"]["a"]["state"] == "Running"
    widget.flush()
    assert widget.states["tasks"]["a"]["state"] == "Success"
    widget.flush()
    assert len(syncs) == 2


def test_observing_from_many_threads_loses_nothing() -> None:
    slugs = [f"t{i}" for i in range(400)]
    widget = FlowWidget({"name": "f", "tasks": [{"slug": s, "name": s} for s in slugs], "edges": []})

    def worker(part: list[str]) -> None:
        for slug in part:
            widget.observe([state_event(slug, "Running"), state_event(slug, "Success")])

    threads = [threading.Thread(target=worker, args=(slugs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    widget.flush()
    assert {t["state"] for t in widget.states["tasks"].values()} == {"Success"}
    assert len(widget.states["tasks"]) == 400


def test_large_flows_sync_less_often() -> None:
    big = FlowWidget(
        {"name": "f", "tasks": [{"slug": f"t{i}", "name": "t"} for i in range(10_000)], "edges": []}
    )
    small = FlowWidget({"name": "f", "tasks": [{"slug": "a", "name": "a"}], "edges": []})
    assert small._sync_interval() == widget_module.SYNC_INTERVAL
    assert big._sync_interval() == pytest.approx(1.0)


def test_log_events_do_not_cause_syncs() -> None:
    widget = FlowWidget({"name": "f", "tasks": [{"slug": "a", "name": "a"}], "edges": []})
    syncs = count_syncs(widget)
    widget.observe(
        [{"kind": "log", "flow_run_id": "r", "task": "a", "timestamp": 1.0, "level": "INFO", "message": "x"}]
    )
    widget.flush()
    assert syncs == []


# -- messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [{"type": "run"}, {"type": "cancel"}, {"type": "rerun_failed"}, {"type": "run_to", "slug": "total"}],
)
def test_actions_go_to_on_action(content: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    widget = FlowWidget(etl_flow().structure(), on_action=lambda kind, body: calls.append((kind, body)))
    sent = Sent(widget, monkeypatch)
    message(widget, content)
    assert calls == [(content["type"], content)]
    assert sent.messages == []


def test_an_action_without_a_handler_is_reported_to_the_front_end(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = FlowWidget(etl_flow().structure())
    sent = Sent(widget, monkeypatch)
    message(widget, {"type": "run"})
    assert sent.messages == [
        {"type": "error", "message": "'run' is not available: this widget was created without on_action"}
    ]


def test_a_failing_handler_becomes_an_error_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(kind: str, body: dict[str, Any]) -> None:
        raise RuntimeError("a run is already going")

    widget = FlowWidget(etl_flow().structure(), on_action=refuse)
    sent = Sent(widget, monkeypatch)
    message(widget, {"type": "cancel"})
    message(widget, {"type": "launch"})
    assert sent.messages == [
        {"type": "error", "message": "cancel failed: RuntimeError: a run is already going"},
        {"type": "error", "message": "unknown widget message 'launch'"},
    ]


def test_detail_answers_with_state_logs_inputs_and_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = FlowWidget(etl_flow().structure())
    run_into(widget, etl_flow())
    sent = Sent(widget, monkeypatch)
    message(widget, {"type": "detail", "slug": "load"})
    (reply,) = sent.messages
    assert reply["type"] == "detail"
    assert reply["slug"] == "load"
    assert reply["state"] == "Success"
    assert reply["inputs"] == ["n"]
    assert reply["outputs"] == ["rows"]  # plain tasks: the argument names their value feeds
    assert [line["message"] for line in reply["logs"]] == ["loading 3"]
    assert set(reply["logs"][0]) == {"timestamp", "level", "message"}

    message(widget, {"type": "detail", "slug": "explode"})
    failure = sent.messages[-1]
    assert failure["state"] == "Failed"
    assert failure["message"] == "ValueError: cannot handle 3 rows"
    assert any("ValueError" in line["message"] for line in failure["logs"])


def test_detail_provider_adds_to_the_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = FlowWidget(
        etl_flow().structure(),
        detail_provider=lambda slug: {
            "logs": [{"timestamp": 1.0, "level": "INFO", "message": f"{slug} from db"}]
        },
    )
    sent = Sent(widget, monkeypatch)
    message(widget, {"type": "detail", "slug": "total"})
    reply = sent.messages[0]
    assert reply["logs"] == [{"timestamp": 1.0, "level": "INFO", "message": "total from db"}]
    assert reply["slug"] == "total"
    assert reply["inputs"] == ["rows"]


def test_notify_error_sends_a_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = FlowWidget()
    sent = Sent(widget, monkeypatch)
    widget.notify_error("kernel restarted")
    assert sent.messages == [{"type": "error", "message": "kernel restarted"}]


# -- repr and traitlets --------------------------------------------------------


def test_repr_is_a_stable_summary() -> None:
    widget = FlowWidget(etl_flow().structure())
    assert repr(widget) == "FlowWidget(flow='etl', tasks=3)"
    run_into(widget, etl_flow())
    assert repr(widget) == "FlowWidget(flow='etl', tasks=3, Success=2, Failed=1)"
    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["text/plain"] == repr(widget)
    assert "0x" not in data["text/plain"]


def test_repr_of_an_empty_widget() -> None:
    assert repr(FlowWidget()) == "FlowWidget(flow='', tasks=0)"


def test_observe_still_registers_trait_observers() -> None:
    widget = FlowWidget()
    changes: list[str] = []
    widget.observe(lambda change: changes.append(change["name"]), names="graph")
    widget.set_structure(etl_flow().structure())
    assert changes == ["graph"]


def test_the_front_end_bundle_is_built_and_used() -> None:
    esm = Path(widget_module.STATIC / "widget.js")
    assert esm.is_file(), "run `pip install -e .` (needs npm) to build nbflow/static"
    assert "nbflow-widget" in FlowWidget()._esm
    assert widget_module._bundle("missing.js", "fallback") == "fallback"
