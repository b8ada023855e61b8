"""Flow code storage: where registration puts a flow's module and the agent reads it.

The server gets only the reference (kind, location, sha256). The agent refuses
code whose SHA-256 does not match, so a changed or swapped file never runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from nbflow.core.errors import StorageError
from nbflow.core.files import atomic_write
from nbflow.core.settings import nbflow_home


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "flow"


class LocalStorage:
    """A directory: ``$NBFLOW_HOME/storage`` by default, or a shared path the agents can read."""

    kind = "local"

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root is not None else nbflow_home() / "storage"

    def put(self, flow_name: str, code: str) -> dict[str, Any]:
        digest = sha256_text(code)
        path = self.root / _safe(flow_name) / f"{digest}.py"
        if not path.exists():
            try:
                atomic_write(path, code.encode())
            except OSError as exc:
                raise StorageError(f"cannot write the flow's code to {path}: {exc}") from None
        return {"kind": self.kind, "location": str(path), "sha256": digest}


def load_code(ref: dict[str, Any]) -> str:
    """The flow's code, after checking its SHA-256 against the registered one."""
    kind = ref.get("kind")
    if kind != "local":
        raise StorageError(f"unknown storage kind {kind!r}; this agent reads 'local' storage")
    path = Path(str(ref.get("location", "")))
    try:
        code = path.read_text()
    except OSError as exc:
        raise StorageError(
            f"cannot read the flow's code at {path} ({exc.strerror or exc}); register with "
            "--storage DIR on a path this agent can read"
        ) from None
    digest = sha256_text(code)
    if digest != ref.get("sha256"):
        raise StorageError(
            f"the flow's code at {path} does not match its registration (sha256 {digest[:12]}… "
            f"instead of {str(ref.get('sha256'))[:12]}…); refusing to run it: register the flow again"
        )
    return code
