"""Result caching: a key from code, inputs and parameters; values on disk.

A task with ``cache_for`` whose key matches a stored result younger than the
duration ends ``Cached`` and gets the stored value without running. Values
are cloudpickled files under ``$NBFLOW_HOME/cache``, written atomically, so a
cache survives the process and is shared by every run on the machine.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from nbflow.core.files import atomic_write
from nbflow.core.settings import nbflow_home

if TYPE_CHECKING:
    from collections.abc import Mapping

_MISSING = object()


def fingerprint(value: Any) -> str | None:
    """A stable digest of a value, or ``None`` when it cannot be pickled."""
    try:
        data = cloudpickle.dumps(value, protocol=5)
    except Exception:
        return None
    return hashlib.sha256(data).hexdigest()


def cache_key(source: str, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> str | None:
    """Same source + same inputs + same parameters = same key; ``None`` if uncacheable."""
    digest = hashlib.sha256(source.encode())
    for name in sorted(inputs):
        fp = fingerprint(inputs[name])
        if fp is None:
            return None
        digest.update(f"\0{name}={fp}".encode())
    try:
        digest.update(b"\0params=" + json.dumps(parameters, sort_keys=True, default=repr).encode())
    except (TypeError, ValueError):
        return None
    return digest.hexdigest()


class ResultStore:
    """Cached task results on disk, keyed by ``cache_key``, one folder per flow."""

    def __init__(self, root: Path | str | None = None, *, flow: str = "default") -> None:
        base = Path(root) if root is not None else nbflow_home() / "cache"
        self.root = base / _safe_name(flow)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.pkl"

    def get(self, key: str, max_age: float) -> Any:
        """The stored value if younger than ``max_age`` seconds, else ``MISSING``."""
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                created, value = cloudpickle.load(fh)
        except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError):
            return _MISSING
        except Exception:  # a corrupt or foreign file is a miss, never a failed task
            return _MISSING
        if time.time() - created > max_age:
            return _MISSING
        return value

    def put(self, key: str, value: Any) -> str | None:
        """Store ``value``; ``None`` on success, else why it could not be stored."""
        path = self._path(key)
        try:
            data = cloudpickle.dumps((time.time(), value), protocol=5)
        except Exception as exc:
            return f"the result cannot be pickled ({type(exc).__name__}: {exc})"
        try:
            atomic_write(path, data)
        except OSError as exc:
            return f"cannot write the cache under {self.root} ({exc})"
        return None

    def clear(self) -> int:
        """Forget every cached result of this flow; returns how many there were."""
        count = 0
        for path in self.root.glob("*/*.pkl"):
            path.unlink(missing_ok=True)
            count += 1
        return count


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return cleaned or "default"


MISSING = _MISSING
