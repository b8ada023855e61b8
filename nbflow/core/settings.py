"""Where nbflow keeps its files: ``NBFLOW_HOME`` (default ``~/.nbflow``)."""

from __future__ import annotations

import os
from pathlib import Path


def nbflow_home() -> Path:
    """The directory for the result cache, flow storage, the local database and config."""
    return Path(os.environ.get("NBFLOW_HOME") or Path.home() / ".nbflow").expanduser()


def private_files() -> Path:
    """Make what this process creates readable by this user only (umask 077), and
    ``NBFLOW_HOME`` a 0700 folder: the database, spool, logs and stored code are private.
    Returns ``NBFLOW_HOME``."""
    os.umask(0o077)
    home = nbflow_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if home.stat().st_mode & 0o077:
        home.chmod(0o700)
    return home
