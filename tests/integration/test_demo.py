"""`nbflow demo`: the README's one-command quick start, on a fresh NBFLOW_HOME and again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_in_a_fresh_home_and_again(nbflow_home: Path) -> None:
    env = {**os.environ, "NBFLOW_HOME": str(nbflow_home)}
    for attempt in ("fresh", "again"):
        done = subprocess.run(
            [sys.executable, "-m", "nbflow.cli", "demo"], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{attempt}:\n{done.stdout}\n{done.stderr}"
        out = done.stdout
        assert "registered flow 'daily_sales'" in out
        for task in ("extract", "totals", "averages", "report"):
            assert f"  {task:<10} Success" in out, out
        assert "flow run Success: 2024-06-01: best region" in out
    assert (nbflow_home / "demo" / "daily_sales.ipynb").exists()
    assert "version 1" in out  # the same notebook again is the same version


def _processes_with(marker: bytes) -> list[int]:
    """Pids of this user's processes whose environment holds ``marker`` (the demo's NBFLOW_HOME)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:  # gone, or not ours
            continue
    return found


def test_demo_serve_prints_next_lines_that_work_as_typed_and_sigterm_stops_everything(
    nbflow_home: Path,
) -> None:
    import queue
    import shlex
    import signal
    import threading
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from server_helpers import free_port

    # A shell where the venv is not activated: only the system's PATH.
    bare = {**os.environ, "NBFLOW_HOME": str(nbflow_home), "PATH": "/usr/bin:/bin"}
    bare.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbflow.cli", "demo", "--serve", "--port", str(free_port())],
        env=bare, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    out: list[str] = []
    deadline = time.time() + 240
    while not any("Ctrl-C stops them" in line for line in out):
        assert time.time() < deadline and proc.poll() is None, "".join(out)
        try:
            out.append(lines.get(timeout=1))
        except queue.Empty:
            continue
    text = "".join(out)
    try:
        jupyter = next(line for line in out if " lab " in line).split("#")[0].strip()
        assert Path(shlex.split(jupyter)[0]).is_file(), jupyter  # a path that exists, not a bare name
        show = next(line for line in out if " runs show " in line).strip()
        done = subprocess.run(shlex.split(show), env=bare, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{show}\n{done.stdout}\n{done.stderr}"
        assert "report" in done.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(90)
    marker = f"NBFLOW_HOME={nbflow_home}".encode()
    deadline = time.time() + 30
    while _processes_with(marker) and time.time() < deadline:
        time.sleep(0.5)
    assert _processes_with(marker) == [], f"left running after SIGTERM:\n{text}"
    agent_log = (nbflow_home / "demo" / "agent.log").read_text()
    assert "Task exception was never retrieved" not in agent_log
