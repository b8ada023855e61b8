"""A run's spool is delivered by one process at a time: its flow process while it lives, then
any agent on the machine (two agents may share one home); a holder that dies lets go."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

from nbflow.agent.spool import Spool

if TYPE_CHECKING:
    from pathlib import Path


def test_a_held_spool_is_left_to_its_holder_until_released(tmp_path: Path) -> None:
    mine = Spool("run-1", 2, tmp_path)
    mine.append([{"kind": "log", "message": "hi"}])
    assert mine.hold()
    assert mine.hold()  # holding twice is holding
    found = Spool("run-1", 2, tmp_path)  # as an agent finds it on the machine
    assert not found.hold()  # another delivery (its own open file) must wait
    mine.release()
    assert found.hold()
    found.remove()
    assert not list(tmp_path.iterdir())  # the hold file goes with the spool


def test_a_holder_that_dies_lets_go(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from nbflow.agent.spool import Spool
            assert Spool("run-1", 2, Path({str(tmp_path)!r})).hold()
            print("held", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not Spool("run-1", 2, tmp_path).hold()
    finally:
        holder.kill()
        holder.wait()
    assert Spool("run-1", 2, tmp_path).hold()
