"""The server's secret key: Fernet (AES-128-CBC with HMAC-SHA256) from a key file.

The key lives in ``NBFLOW_HOME/secrets.key`` (or ``NBFLOW_SECRETS_KEY_FILE``), created on
first use with mode 0600 and never stored in the database: a copy of the database alone
reveals no secret. Replicas of one server share the file. A value that no longer decrypts
(the key file was replaced) is an error naming the file, never garbage.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from nbflow.core.errors import NbflowError
from nbflow.core.settings import nbflow_home

KEY_ENV = "NBFLOW_SECRETS_KEY_FILE"


def key_path() -> Path:
    """Where the key file is (``NBFLOW_SECRETS_KEY_FILE``, else ``NBFLOW_HOME/secrets.key``)."""
    return Path(os.environ.get(KEY_ENV) or nbflow_home() / "secrets.key").expanduser()


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two replicas starting together never write two different keys.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(Fernet.generate_key())


@functools.cache
def _box(path: Path) -> Fernet:
    if not path.exists():
        _create(path)
    if path.stat().st_mode & 0o077:
        raise NbflowError(f"the secrets key {path} is readable by other users; chmod 600 it")
    try:
        return Fernet(path.read_bytes().strip())
    except (ValueError, OSError) as exc:
        raise NbflowError(f"the secrets key {path} is not a Fernet key ({exc})") from None


def box() -> Fernet:
    """The server's Fernet (the key file made 0600 on first use)."""
    return _box(key_path())


def encrypt(value: str) -> str:
    """``value`` encrypted (a URL-safe text token)."""
    return box().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """The value of an encrypted token."""
    try:
        return box().decrypt(token.encode()).decode()
    except InvalidToken:
        raise NbflowError(
            f"a stored secret does not decrypt with the key in {key_path()}; was the key file replaced? "
            "set the secret again"
        ) from None
