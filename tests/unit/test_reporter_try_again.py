"""An agent's batch the server asks for again stays in the spool and goes again; it is never
dropped as refused: ``TRY_AGAIN`` (other writers kept moving its rows) and ``UNAVAILABLE`` (the
server could not reach its database). The flow process's confirmation that its run is
``Running`` is sent again the same way, the same change each time."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from nbflow.agent.reporter import ServerReporter, make_sender
from nbflow.agent.spool import Spool
from nbflow.core.errors import APIError, TransportError
from nbflow.core.record import StateRecord, StateResult, new_id

if TYPE_CHECKING:
    from pathlib import Path


class BusyServer:
    """Answers ``code`` ``busy`` times, then takes every state."""

    def __init__(self, busy: int, code: str = "TRY_AGAIN") -> None:
        self.busy = busy
        self.code = code
        self.taken: list[dict[str, Any]] = []

    def set_task_run_states(self, entries: list[dict[str, Any]], *, refused_only: bool = False) -> list[Any]:
        assert refused_only
        if self.busy:
            self.busy -= 1
            error = {"message": "not stored this time; send it again", "extensions": {"code": self.code}}
            raise APIError(error["message"], errors=[error])
        self.taken += entries
        return []


@pytest.mark.parametrize("code", ["TRY_AGAIN", "UNAVAILABLE"])
def test_a_batch_the_server_asks_for_again_stays_in_the_spool_until_it_is_taken(
    tmp_path: Path, code: str
) -> None:
    spool = Spool("run-1", 2, tmp_path)
    states = [
        StateRecord(flow_run_id="run-1", task_run_id=new_id(), task="a", state=state,
                    transition_id=new_id(), timestamp=time.time(), execution=2).to_wire()
        for state in ("Running", "Success")
    ]  # fmt: skip
    spool.append(states)
    server = BusyServer(busy=1, code=code)
    send = make_sender(server)  # type: ignore[arg-type]
    with pytest.raises(TransportError, match="asks for the batch again"):
        spool.deliver(send)
    assert len(spool.pending()) == 2  # nothing lost, nothing split
    assert spool.deliver(send) == 2
    assert spool.done()
    assert [s["state"] for s in server.taken] == ["Running", "Success"]


class ServerWhoseDatabaseIsAway:
    """Answers ``code`` ``away`` times to a flow-run state change, then takes it."""

    def __init__(self, away: int, code: str) -> None:
        self.away = away
        self.code = code
        self.sent: list[dict[str, Any]] = []

    def set_flow_run_states(self, entries: list[dict[str, Any]]) -> list[Any]:
        self.sent += entries
        if self.away:
            self.away -= 1
            error = {"message": "not now", "extensions": {"code": self.code}}
            raise APIError(error["message"], errors=[error])
        return [StateResult(entries[0]["flow_run_id"], True, entries[0]["version"] + 1, "Running")]


@pytest.mark.parametrize("code", ["TRY_AGAIN", "UNAVAILABLE"])
def test_the_run_is_confirmed_running_once_the_server_takes_it_again(tmp_path: Path, code: str) -> None:
    reporter = ServerReporter(Spool("run-1", 2, tmp_path), "run-1", 2)
    server = ServerWhoseDatabaseIsAway(away=2, code=code)
    assert reporter.confirm_running(server, patience=5) is None  # type: ignore[arg-type]
    assert reporter.running_confirmed and reporter.flow_version == 3
    # The same change each time (one the server stored already would be acknowledged).
    assert len({entry["transition_id"] for entry in server.sent}) == 1 and len(server.sent) == 3


def test_a_refusal_with_another_code_is_not_tried_again(tmp_path: Path) -> None:
    reporter = ServerReporter(Spool("run-1", 2, tmp_path), "run-1", 2)
    server = ServerWhoseDatabaseIsAway(away=1, code="BAD_REQUEST")
    with pytest.raises(APIError, match="not now"):
        reporter.confirm_running(server, patience=5)  # type: ignore[arg-type]
    assert len(server.sent) == 1
