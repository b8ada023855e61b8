"""`nbflow demo`: the README's one-command quick start, on a fresh NBFLOW_HOME and again."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

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
