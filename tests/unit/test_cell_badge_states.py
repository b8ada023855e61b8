"""What the JupyterLab extension's badges are told about each task cell, in a real in-process IPython.

The comm itself needs a kernel and a frontend (tests/browser/test_cell_badges.py);
here ``CellComm`` sends into a list, and the cells run through the real magics.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import Kernel  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

from nbflow.kernel.cellcomm import CellComm  # noqa: E402
from nbflow.kernel.cellstate import cell_states  # noqa: E402


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


def badges(k: Kernel) -> dict[str, dict[str, Any]]:
    return cell_states(k.session.flow, k.session.view, k.session.ran_sources)


def chain(k: Kernel, *, fail: bool = False) -> None:
    k.run("%load_ext nbflow", cell_id="c0")
    k.run("%%task load --no-run\nx = 2", cell_id="c1")
    k.run(f"%%task double --no-run\ny = x * 2{' / 0' if fail else ''}", cell_id="c2")
    k.run("%%task report --no-run\nz = y + 1", cell_id="c3")


def test_every_task_cell_gets_its_state_duration_and_attempt_after_a_run(k: Kernel) -> None:
    chain(k)
    before = badges(k)
    assert {cell: b["task"] for cell, b in before.items()} == {"c1": "load", "c2": "double", "c3": "report"}
    assert all(b["state"] is None for b in before.values())  # defined, not run yet
    k.run("%flow run", cell_id="c4")
    after = badges(k)
    assert [after[c]["state"] for c in ("c1", "c2", "c3")] == ["Success"] * 3
    assert all(b["duration"] is not None and b["attempt"] == 1 for b in after.values())
    assert not any(b["stale"] or b["upstream_failed"] for b in after.values())


def test_a_failed_task_names_itself_upstream_of_every_task_it_stopped(k: Kernel) -> None:
    chain(k, fail=True)
    k.run("%flow run", cell_id="c4")  # a failed run prints, it does not raise
    b = badges(k)
    assert b["c2"]["state"] == "Failed" and "ZeroDivisionError" in b["c2"]["message"]
    assert b["c3"]["state"] == "TriggerFailed"
    assert b["c3"]["upstream_failed"] == ["double"]
    assert b["c1"]["upstream_failed"] == [] and b["c2"]["upstream_failed"] == []


def test_a_changed_cell_and_everything_downstream_is_stale(k: Kernel) -> None:
    chain(k)
    k.run("%flow run", cell_id="c4")
    k.run("%%task double --no-run\ny = x * 3", cell_id="c2")  # edited, not run
    b = badges(k)
    assert b["c2"]["stale"] == "its code changed since it ran"
    assert b["c3"]["stale"] == "'double' is out of date"
    assert b["c1"]["stale"] == ""
    k.run("%%task double\ny = x * 3", cell_id="c2")  # run now: report read the old y
    b = badges(k)
    assert b["c2"]["stale"] == ""
    assert b["c3"]["stale"] == "'double' ran again after it"


def test_a_retried_success_shows_its_attempt(k: Kernel) -> None:
    k.run("%load_ext nbflow", cell_id="c0")
    k.run("tries = []", cell_id="c1")
    k.run(
        "%%task flaky --retries 2\ntries.append(1)\nif len(tries) < 2:\n    raise OSError('down')\nok = 1",
        cell_id="c2",
    )
    assert badges(k)["c2"]["state"] == "Success"
    assert badges(k)["c2"]["attempt"] == 2


def test_the_comm_sends_states_and_answers_detail_and_order(k: Kernel) -> None:
    chain(k, fail=True)
    sent: list[dict[str, Any]] = []
    comm = CellComm(k.session, sent.append)
    k.session.attach_cell_comm(comm)
    k.run("%flow run", cell_id="c4")  # a failed run prints, it does not raise
    comm.flush()
    states = [m for m in sent if m["type"] == "states"]
    assert states and states[-1]["cells"]["c2"]["state"] == "Failed"

    comm.receive({"type": "detail", "task": "double"})
    detail = sent[-1]
    assert detail["type"] == "detail" and detail["state"] == "Failed"
    assert any("ZeroDivisionError" in line["message"] for line in detail["logs"])

    comm.receive({"type": "order", "cells": "c1"})
    assert sent[-1] == {"type": "notice", "message": "nbflow: 'order' needs a list of cell ids"}
    comm.receive({"type": "bogus"})
    assert sent[-1]["type"] == "notice" and "unknown message type 'bogus'" in sent[-1]["message"]


def test_the_document_order_replaces_the_execution_order(k: Kernel) -> None:
    k.run("%load_ext nbflow", cell_id="c0")
    # Executed out of order: c2 (below) first, then c1 (above), which redefines x.
    k.run("%%task first --no-run\nx = 1", cell_id="c1")
    k.run("%%task third --no-run\ny = x + 1", cell_id="c3")
    k.run("%%task second --no-run\nx = 10", cell_id="c2")
    assert k.session.flow.task_names == ["first", "third", "second"]
    assert ("first", "third") in k.session.flow.edges()

    note = k.session.order_by_cells(["c0", "c1", "c2", "c3"])
    assert k.session.flow.task_names == ["first", "second", "third"]
    assert ("second", "third") in k.session.flow.edges()
    assert note is not None
    assert "New: second → third" in note and "Gone: first → third" in note
    # The same order again changes nothing and says nothing.
    assert k.session.order_by_cells(["c0", "c1", "c2", "c3"]) is None
    k.run("%flow run", cell_id="c5")
    assert k.ns["y"] == 11


def test_cell_actions_run_up_to_a_task_and_rerun_from_one(k: Kernel) -> None:
    chain(k)
    k.session.cell_action("run_to", "double")
    state = k.session.wait(60)
    assert state is not None
    assert {t.name: s.type.value for t, s in state.result.items()} == {"load": "Success", "double": "Success"}
    k.run("%flow run", cell_id="c4")
    k.session.cell_action("rerun_from", "double")
    state = k.session.wait(60)
    assert state is not None
    ran = {t.name: s.type.value for t, s in state.result.items()}
    assert ran == {"load": "Cached", "double": "Success", "report": "Success"}  # load reused, the rest again
    assert k.ns["z"] == 5
    with pytest.raises(Exception, match="no task 'nowhere'"):
        k.session.cell_action("run_to", "nowhere")
    with pytest.raises(Exception, match="unknown cell action 'explode'"):
        k.session.cell_action("explode", "load")


def test_a_watched_server_run_shows_on_the_badges_when_it_is_newer(k: Kernel) -> None:
    import time

    from nbflow.core.record import StateRecord, new_id

    chain(k)
    k.run("%flow run", cell_id="c4")
    sent: list[dict[str, Any]] = []
    comm = CellComm(k.session, sent.append)
    k.session.attach_cell_comm(comm)
    observe = comm.watching()  # what %flow watch / %flow run --server hand the feed's records to
    later = time.time() + 10

    def record(task: str | None, state: str, message: str = "") -> StateRecord:
        return StateRecord(
            flow_run_id="server-run", state=state, transition_id=new_id(), timestamp=later,
            task=task, task_run_id=f"server-{task}" if task else None, message=message,
        )  # fmt: skip

    observe(
        [record(None, "Running"), record("double", "Running"), record("double", "Failed", "OSError: disk")]
    )
    comm.flush()
    cells = sent[-1]["cells"]
    assert cells["c2"]["state"] == "Failed" and cells["c2"]["message"] == "OSError: disk"
    assert cells["c1"]["state"] == "Success"  # the kernel's run is the newest for load
    assert cells["c3"]["upstream_failed"] == ["double"]
    comm.receive({"type": "detail", "task": "double"})
    assert sent[-1]["state"] == "Failed" and sent[-1]["message"] == "OSError: disk"
