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


def test_the_prebuilt_jupyterlab_extension_is_built_and_enabled_by_the_install() -> None:
    import json
    import sys

    built = Path(__file__).resolve().parents[2] / "nbflow" / "labextension"
    package = json.loads((built / "package.json").read_text())
    assert package["name"] == "nbflow"
    assert package["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert (built / package["jupyterlab"]["_build"]["load"]).is_file()
    # What a user checks after `pip install`: JupyterLab lists it, enabled, from the Python package.
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    line = next(
        (ln for ln in (listed.stdout + listed.stderr).splitlines() if ln.strip().startswith("nbflow ")), ""
    )
    assert "enabled" in line and "OK" in line and "(python, nbflow)" in line, listed.stdout + listed.stderr
