"""Writing files so a reader never sees half of one (temp file + rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 folders (``mkdir(parents=True)`` would
    make the parents world-readable); returns it."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return missing[0] if missing else path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a 0600 file), creating parent folders (0700);
    raises ``OSError``."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
