"""Where nbflow keeps its files: ``NBFLOW_HOME`` (default ``~/.nbflow``)."""

from __future__ import annotations

import os
from pathlib import Path


def nbflow_home() -> Path:
    """The directory for the result cache, flow storage, the local database and config."""
    return Path(os.environ.get("NBFLOW_HOME") or Path.home() / ".nbflow").expanduser()
