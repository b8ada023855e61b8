"""The frontend workspace's own tests (vitest), so one `pytest` runs everything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


@pytest.mark.slow
def test_labextension_vitest_suite_passes() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed; the frontend tests need node 20+ and npm")
    if not (LABEXTENSION / "node_modules").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=LABEXTENSION,
            check=True,
            capture_output=True,
            timeout=600,
        )
    done = subprocess.run([npm, "test"], cwd=LABEXTENSION, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_built_bundles_are_shipped() -> None:
    static = Path(__file__).resolve().parents[2] / "nbflow" / "static"
    for name in ("widget.js", "widget.css", "dag.js", "dag.css", "ui/ui.js", "ui/ui.css"):
        assert (static / name).stat().st_size > 1000, f"{name} missing: pip install -e . builds it"
    assert '<script type="module" src="/ui/ui.js">' in (static / "ui" / "index.html").read_text()
