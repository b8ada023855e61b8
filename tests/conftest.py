from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def nbflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own NBFLOW_HOME: cache, storage, database and config stay apart."""
    home = tmp_path / "nbflow-home"
    monkeypatch.setenv("NBFLOW_HOME", str(home))
    for var in ("NBFLOW_API_URL", "NBFLOW_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return home


def postgres_url() -> str | None:
    return os.environ.get("NBFLOW_TEST_POSTGRES_URL") or None
