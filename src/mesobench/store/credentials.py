"""Credentials for an authenticating tracking server: from the environment, never from configs.

A shared server started beyond loopback (``scripts/mlflow_server.py``, docs/slurm.md) asks every
client for a user name and password. Clients take them from MLflow's standard environment
variables ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, or from the credentials
file the server wrote, named by ``MESOBENCH_CREDENTIALS`` (its ``MLFLOW_TRACKING_*`` lines;
variables already set win). They never travel in a config or a command line: the runner logs its
whole config as run params and its command line in the run's note, so a tracking URI that carries
a password (``http://user:secret@host``) is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from mesobench.errors import ConfigError

log = logging.getLogger(__name__)

FILE_VARIABLE = "MESOBENCH_CREDENTIALS"
USERNAME, PASSWORD = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


def read_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of a credentials file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def load() -> None:
    """Put the credentials of ``$MESOBENCH_CREDENTIALS`` into the environment MLflow's client
    reads, unless both variables are set already. Nothing happens without that variable."""
    named = os.environ.get(FILE_VARIABLE)
    if not named or (os.environ.get(USERNAME) and os.environ.get(PASSWORD)):
        return
    path = Path(named).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{FILE_VARIABLE}={named}: no such file. Point it at the credentials.env the "
            "tracking server wrote in its --dir, or export MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD instead."
        )
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; `chmod 600 %s`", path, path)
    values = read_file(path)
    missing = [k for k in (USERNAME, PASSWORD) if not values.get(k)]
    if missing:
        raise ConfigError(f"{FILE_VARIABLE}={named} lacks {missing} lines")
    for key in (USERNAME, PASSWORD):
        os.environ.setdefault(key, values[key])


def refuse_secret_in_uri(uri: str) -> None:
    """A tracking URI with a user or password in it would be logged with the run's params."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        raise ConfigError(
            f"tracking.uri carries credentials ({parts.scheme}://{parts.username}:…@"
            f"{parts.hostname}): they would be logged with every run. Use "
            f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''} and "
            f"pass them as {USERNAME} / {PASSWORD} (or {FILE_VARIABLE}=<credentials file>)."
        )


def explain_refusal(uri: str, exc: Exception) -> None:
    """Turn a server's 401 / 403 into what to do about it (a ConfigError); else return."""
    text = str(exc)
    if not any(m in text for m in ("401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED")):
        return
    given = "were rejected" if os.environ.get(USERNAME) else "were not given"
    raise ConfigError(
        f"the tracking server {uri} refused this client: its credentials {given}. Set "
        f"{FILE_VARIABLE}=<the credentials.env in the server's --dir> or export {USERNAME} and "
        f"{PASSWORD} (docs/slurm.md#3-a-shared-store). Server said: {text[:200]}"
    ) from exc
