"""Where the client finds its server: arguments, then NBFLOW_API_URL / NBFLOW_API_KEY,
then ``$NBFLOW_HOME/config.toml`` (written by ``nbflow server start`` on first start)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass

from nbflow.core.errors import ClientError
from nbflow.core.settings import nbflow_home

DEFAULT_URL = "http://127.0.0.1:4200"


def config_path() -> os.PathLike[str]:
    """``NBFLOW_HOME/config.toml``."""
    return nbflow_home() / "config.toml"


def read_config() -> dict[str, str]:
    """The saved ``[server]`` settings (url, key), or ``{}``."""
    path = nbflow_home() / "config.toml"
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}; fix or delete it") from None
    server = data.get("server", {})
    return {k: str(v) for k, v in server.items() if isinstance(v, str | int)}


def write_config(url: str, key: str) -> None:
    """Save the server URL and key for this user's client, CLI and notebooks (mode 600)."""
    home = nbflow_home()
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    text = f'[server]\nurl = "{url}"\nkey = "{key}"\n'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass(frozen=True)
class ServerConfig:
    """The server URL and key a client uses."""

    url: str
    key: str | None


def resolve(url: str | None = None, key: str | None = None) -> ServerConfig:
    """URL and key: the arguments, else the environment, else the saved config."""
    saved = read_config()
    resolved_url = url or os.environ.get("NBFLOW_API_URL") or saved.get("url") or DEFAULT_URL
    resolved_key = key or os.environ.get("NBFLOW_API_KEY") or saved.get("key")
    return ServerConfig(resolved_url.rstrip("/"), resolved_key)
