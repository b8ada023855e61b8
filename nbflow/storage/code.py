"""Flow code storage: where registration puts a flow's module and the agent reads it.

The server gets only the reference (kind, location, sha256). The agent refuses
code whose SHA-256 does not match, so a changed or swapped file never runs.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import StorageError
from nbflow.core.files import atomic_write
from nbflow.core.results import join, read_bytes, write_bytes
from nbflow.core.settings import nbflow_home

if TYPE_CHECKING:
    from collections.abc import Sequence


def sha256_text(text: str) -> str:
    """The hex SHA-256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "flow"


class LocalStorage:
    """A directory: ``$NBFLOW_HOME/storage`` by default, or a shared path the agents can read."""

    kind = "local"

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root is not None else nbflow_home() / "storage"

    def put(self, flow_name: str, code: str) -> dict[str, Any]:
        """Store ``code`` under the flow's name; the reference the server records."""
        digest = sha256_text(code)
        path = self.root / _safe(flow_name) / f"{digest}.py"
        if not path.exists():
            try:
                atomic_write(path, code.encode())
            except OSError as exc:
                raise StorageError(f"cannot write the flow's code to {path}: {exc}") from None
        return {"kind": self.kind, "location": str(path), "sha256": digest}


class FsspecStorage:
    """Any fsspec URL (``s3://bucket/prefix``, ``gcs://...``): agents on other machines read the
    code there, with no shared filesystem. Results of the flow's runs go under the same URL
    (``{url}/results``), so every agent and notebook finds them."""

    kind = "fsspec"

    def __init__(self, url: str) -> None:
        if not is_url(url):
            raise StorageError(f"{url!r} is not a storage URL such as s3://bucket/prefix")
        self.url = url.rstrip("/")

    def put(self, flow_name: str, code: str) -> dict[str, Any]:
        """Store ``code``; the reference the server records (with where results go)."""
        digest = sha256_text(code)
        location = join(self.url, "code", _safe(flow_name), f"{digest}.py")
        write_bytes(location, code.encode())
        return {
            "kind": self.kind,
            "location": location,
            "sha256": digest,
            "results": join(self.url, "results"),
        }


def is_url(where: str | None) -> bool:
    """True for an fsspec URL (``s3://...``) other than a local file."""
    protocol, sep, _ = (where or "").partition("://")
    return bool(sep) and protocol not in ("", "file", "local")


def storage_for(where: str | None) -> LocalStorage | FsspecStorage:
    """``--storage``: a URL (``s3://bucket/prefix``) or a folder (default ``NBFLOW_HOME/storage``)."""
    return FsspecStorage(where) if where is not None and is_url(where) else LocalStorage(where)


MAX_CODE_BYTES = 10_000_000
"""The largest flow module an agent reads (an exported notebook is a few kilobytes)."""


def storage_roots(extra: Sequence[str | Path] = ()) -> list[Path]:
    """The folders an agent reads flow code from: ``NBFLOW_HOME/storage`` and ``extra``."""
    return [LocalStorage().root, *(Path(r).expanduser().resolve() for r in extra)]


def load_code(ref: dict[str, Any], roots: Sequence[Path] | None = None) -> str:
    """The flow's code, after checking that it lies under one of ``roots`` (default
    ``storage_roots()``), is a regular file of sane size, and matches its registered SHA-256."""
    kind = ref.get("kind")
    if kind == FsspecStorage.kind:
        return _load_from_url(ref)
    if kind != "local":
        raise StorageError(f"unknown storage kind {kind!r}; this agent reads 'local' and 'fsspec' storage")
    location = ref.get("location")
    if not isinstance(location, str) or not location or "\x00" in location:
        raise StorageError("the flow's storage location is not a file path; register the flow again")
    path = Path(location).expanduser()
    allowed = list(roots) if roots is not None else storage_roots()
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise StorageError(
            f"the flow's code at {path} is outside this agent's storage folders "
            f"({', '.join(map(str, allowed))}); start the agent with --storage-root for a shared folder"
        )
    code = _read_bounded(resolved, path)
    if sha256_text(code) != ref.get("sha256"):
        raise StorageError(
            f"the flow's code at {path} does not match its registration; refusing to run it: register the flow again"
        )
    return code


def _load_from_url(ref: dict[str, Any]) -> str:
    """Code at a storage URL (never a local file: those must lie under the agent's folders)."""
    location = ref.get("location")
    if not isinstance(location, str) or not is_url(location):
        raise StorageError("the flow's storage location is not a storage URL; register the flow again")
    data = read_bytes(location, limit=MAX_CODE_BYTES)
    if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
        raise StorageError(
            f"the flow's code at {location} does not match its registration; refusing to run it: register the flow again"
        )
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise StorageError(f"the flow's code at {location} is not UTF-8 text") from None


def _read_bounded(resolved: Path, shown: Path) -> str:
    try:
        info = resolved.stat()
        if not stat.S_ISREG(info.st_mode):
            raise StorageError(f"the flow's code at {shown} is not a regular file")
        if info.st_size > MAX_CODE_BYTES:
            raise StorageError(f"the flow's code at {shown} is larger than {MAX_CODE_BYTES} bytes")
        with resolved.open("rb") as fh:
            data = fh.read(MAX_CODE_BYTES + 1)
    except OSError as exc:
        raise StorageError(
            f"cannot read the flow's code at {shown} ({exc.strerror or exc}); register with "
            "--storage DIR on a path this agent can read"
        ) from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise StorageError(f"the flow's code at {shown} is not UTF-8 text") from None
