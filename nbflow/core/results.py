"""Stored results: each task run's outputs written under a URL, named by a reference.

A ``ResultStore`` writes a task run's result (cloudpickled) to
``{url}/{flow_run_id}/{task_slug}-{task_run_id}.pkl`` through fsspec: a local folder
(``NBFLOW_HOME/results`` by default) or any fsspec URL such as ``s3://bucket/prefix``
(s3fs; its options come from fsspec's configuration, e.g. ``FSSPEC_S3_ENDPOINT_URL``).
The reference, ``{location}#sha256={digest}``, is all a server records (the hybrid
model: no data reaches it); ``load`` reads a reference back and refuses bytes whose
digest differs. Restarting a failed run reuses these results, ``%flow pull`` loads them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import cloudpickle

from nbflow.core.errors import StorageError
from nbflow.core.files import atomic_write
from nbflow.core.settings import nbflow_home

MAX_RESULT_BYTES = 2_000_000_000
"""The largest stored result ``load`` reads."""

_REF = re.compile(r"^(?P<location>.+)#sha256=(?P<digest>[0-9a-f]{64})$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]-]+")


def default_results_url() -> str:
    """Where results go when nothing else is said: ``NBFLOW_HOME/results``."""
    return str(nbflow_home() / "results")


def join(url: str, *parts: str) -> str:
    """``url`` with path parts added (one ``/`` between each)."""
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def make_ref(location: str, digest: str) -> str:
    """The reference a server records for a stored result."""
    return f"{location}#sha256={digest}"


def parse_ref(ref: str) -> tuple[str, str]:
    """``(location, sha256)`` of a reference; ``StorageError`` if it is not one."""
    match = _REF.match(ref or "")
    if match is None:
        raise StorageError(f"{ref!r:.120} is not a stored result's reference (LOCATION#sha256=DIGEST)")
    return match["location"], match["digest"]


def is_ref(ref: str | None) -> bool:
    """True for a stored result's reference (a cache key, the other kind of ``result_ref``, is not)."""
    return bool(ref) and _REF.match(ref or "") is not None


def checked_url(url: str) -> str:
    """A result store's URL as given on a command line, checked before a run starts: a local
    path made absolute (results are found again from anywhere), an unknown protocol or a
    missing fsspec extra (``s3://`` without s3fs) a ``StorageError`` naming it."""
    import fsspec

    if "://" not in url:
        return str(Path(url).expanduser().resolve())
    try:
        fsspec.core.url_to_fs(url)
    except Exception as exc:
        raise StorageError(f"cannot store results at {url}: {type(exc).__name__}: {exc}") from None
    return url.rstrip("/")


class ResultStore:
    """Task-run results under one URL (a folder, ``s3://bucket/prefix``, any fsspec URL)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = (url or default_results_url()).rstrip("/")

    def run_folder(self, flow_run_id: str) -> str:
        """Where one flow run's results go."""
        return join(self.url, _UNSAFE.sub("_", flow_run_id))

    def location(self, flow_run_id: str, task_slug: str, task_run_id: str) -> str:
        """Where one task run's result goes."""
        name = _UNSAFE.sub("_", f"{task_slug}-{task_run_id}")
        return join(self.run_folder(flow_run_id), f"{name}.pkl")

    def save(self, flow_run_id: str, task_slug: str, task_run_id: str, value: Any) -> str:
        """Write ``value``; its reference. ``StorageError`` saying why it could not be written."""
        try:
            data = cloudpickle.dumps(value, protocol=5)
        except Exception as exc:
            raise StorageError(f"the result cannot be pickled ({type(exc).__name__}: {exc})") from None
        location = self.location(flow_run_id, task_slug, task_run_id)
        write_bytes(location, data)
        return make_ref(location, hashlib.sha256(data).hexdigest())


def write_bytes(location: str, data: bytes) -> None:
    """Write ``data`` at an fsspec location (folders made as needed); ``StorageError`` on failure."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    try:
        fs, path = fsspec.core.url_to_fs(location)
        # A local file is written whole then renamed, so a reader never sees half of it.
        if isinstance(fs, LocalFileSystem):
            atomic_write(Path(path), data)
            return
        try:  # object stores have no folders: no round trip to make one first
            with fs.open(path, "wb") as fh:
                fh.write(data)
        except FileNotFoundError:  # a filesystem with real folders (sftp, ...)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(path, "wb") as fh:
                fh.write(data)
    except Exception as exc:
        raise StorageError(f"cannot write {location}: {type(exc).__name__}: {exc}") from None


def read_bytes(location: str, *, limit: int = MAX_RESULT_BYTES) -> bytes:
    """The bytes at an fsspec location, at most ``limit``; ``StorageError`` naming it otherwise."""
    import fsspec

    try:
        with fsspec.open(location, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise StorageError(f"nothing stored at {location}") from None
    except Exception as exc:
        raise StorageError(f"cannot read {location}: {type(exc).__name__}: {exc}") from None
    if len(data) > limit:
        raise StorageError(f"{location} is larger than {limit} bytes")
    return data


def load(ref: str) -> Any:
    """The value a reference names, after checking its SHA-256 (``StorageError`` otherwise)."""
    location, digest = parse_ref(ref)
    data = read_bytes(location)
    if hashlib.sha256(data).hexdigest() != digest:
        raise StorageError(
            f"the result at {location} does not match its recorded sha256; refusing to load it"
        )
    try:
        return cloudpickle.loads(data)
    except Exception as exc:
        raise StorageError(f"cannot unpickle the result at {location}: {type(exc).__name__}: {exc}") from None
