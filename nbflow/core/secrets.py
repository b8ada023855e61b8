"""``nbflow.secret("NAME")``: a secret's value in a task, and the masking of every value read.

Where the value comes from, first found wins:

1. the run's server, when the process runs a run for an agent (the flow process sets a
   resolver: ``set_resolver``; the server keeps values encrypted and answers run tokens only);
2. the environment variable ``NBFLOW_SECRET_<NAME>``;
3. ``NBFLOW_HOME/secrets.toml`` (``NAME = "value"`` lines; make it 0600).

So the same notebook runs in the kernel and headless (2, 3) and on agents (1). Every value
read is remembered in this process, and ``mask`` replaces it with ``****`` in text: the
engine masks each task log line and state message it makes, and the agent's reporter masks
every message again before it leaves for the server.
"""

from __future__ import annotations

import os
import re
import threading
import tomllib
from typing import TYPE_CHECKING

from nbflow.core.errors import NbflowError
from nbflow.core.settings import nbflow_home

if TYPE_CHECKING:
    from collections.abc import Callable

MASK = "****"
ENV_PREFIX = "NBFLOW_SECRET_"
SECRETS_FILE = "secrets.toml"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")

_lock = threading.Lock()
_resolver: Callable[[str], str | None] | None = None
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


class SecretError(NbflowError):
    """A secret that is not set anywhere nbflow looks, or a bad secret name."""


def check_name(name: str) -> str:
    """``name`` if it can name a secret (letters, digits, ``_``; the environment's rules)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SecretError(f"secret name {name!r}: use letters, digits and _ (not starting with a digit)")
    return name


def set_resolver(resolver: Callable[[str], str | None] | None) -> None:
    """Where this process asks first (the agent's flow process: the run's server)."""
    global _resolver
    _resolver = resolver


def remember(value: str) -> None:
    """Mask ``value`` from now on in this process."""
    global _pattern
    if not value:
        return
    with _lock:
        if value in _known:
            return
        _known.add(value)
        # Longest first: a value that contains another is masked whole.
        ordered = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def mask(text: str) -> str:
    """``text`` with every secret value this process has read replaced by ``****``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def _from_file(name: str) -> str | None:
    path = nbflow_home() / SECRETS_FILE
    if not path.exists():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SecretError(f"cannot read {path}: {exc}") from None
    values = data.get("secrets", data)
    value = values.get(name) if isinstance(values, dict) else None
    return None if value is None else str(value)


def secret(name: str) -> str:
    """The value of secret ``name`` (see the module docstring for where it is looked up)."""
    check_name(name)
    value = _resolver(name) if _resolver is not None else None
    if value is None:
        value = os.environ.get(ENV_PREFIX + name)
    if value is None:
        value = _from_file(name)
    if value is None:
        where = "the run's server, " if _resolver is not None else ""
        raise SecretError(
            f"secret {name!r} is not set: looked in {where}the environment variable {ENV_PREFIX}{name} "
            f"and {nbflow_home() / SECRETS_FILE}; set it with `nbflow secrets set {name}` (runs on agents) "
            f"or export {ENV_PREFIX}{name}=... (local runs)"
        )
    remember(value)
    return value
