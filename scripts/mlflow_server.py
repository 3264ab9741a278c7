"""Start a shared MLflow tracking server: PostgreSQL backend store and served artifacts.

    python scripts/mlflow_server.py                  # what `make server` runs: 127.0.0.1, no auth
    python scripts/mlflow_server.py --dir /shared/mlflow --host 0.0.0.0   # a cluster's head node
    python -m mesobench.run ... tracking=server tracking.uri=http://127.0.0.1:5000

PostgreSQL (Debian's ``postgresql`` package or any install with ``initdb``/``pg_ctl`` on PATH or
under /usr/lib/postgresql/*/bin) gets a private cluster in ``--dir``. As root, PostgreSQL runs as
the ``postgres`` system user (it refuses to run as root).

**Authentication** (docs/slurm.md#3-a-shared-store). On 127.0.0.1 / localhost / ::1 the
servers are reachable from this machine only and, by default, ask for no password (a laptop).
Any other ``--host`` (a network interface, 0.0.0.0, even a second loopback address such as
127.0.0.2) turns authentication on: PostgreSQL accepts the ``mesobench`` role only with its
password (scram-sha-256, every ``pg_hba.conf`` line), and MLflow runs its basic-auth app, so a
request without credentials gets 401. The secrets are generated on first start (random,
``secrets.token_urlsafe``), kept in ``--dir`` with mode 0600 (``credentials.env`` for clients,
``pgpass`` and ``basic_auth.ini`` for the servers), printed once with where they live, and reused
on every restart. No secret goes on a command line (``ps`` shows those to every user). Asking for
a non-loopback host with ``--auth off`` is refused (exit code 2).

**Host names.** MLflow rejects requests whose ``Host`` header it does not expect (DNS-rebinding
protection: 403). The server accepts its ``--host`` address, this machine's host name and fully
qualified name (and, for 0.0.0.0, their addresses), with any port, plus ``--allowed-hosts``.

**Stopping.** Ctrl-C, SIGTERM (``kill``, a scheduler, systemd) and SIGHUP all stop both servers:
MLflow, then PostgreSQL with a fast shutdown (committed data is kept), freeing both ports.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import glob
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mesobench.store.credentials import read_file

ROLE = DATABASE = "mesobench"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
"""Hosts that serve this machine only: the default password-free mode is allowed there."""
AUTH_CHOICES = ("auto", "on", "off")
CREDENTIALS = "credentials.env"


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise SystemExit(
            f"PostgreSQL's {name} was not found. Install PostgreSQL (Debian/Ubuntu: "
            "`apt-get install postgresql`; macOS: `brew install postgresql`)."
        )
    return found


def _as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` system user when root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


@dataclass(frozen=True)
class Credentials:
    """The server's secrets: MLflow's admin user and the PostgreSQL role's password."""

    username: str
    password: str
    pg_password: str

    @classmethod
    def load_or_create(cls, root: Path) -> tuple[Credentials, bool]:
        """The credentials kept in ``root/credentials.env``, created on first use; and whether
        they were just created (then the caller prints where they live, once)."""
        path = root / CREDENTIALS
        if path.exists():
            values = read_file(path)
            return cls(
                values["MLFLOW_TRACKING_USERNAME"],
                values["MLFLOW_TRACKING_PASSWORD"],
                values["MESOBENCH_PG_PASSWORD"],
            ), False
        made = cls(ROLE, secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        _write_private(
            path,
            "# mesobench tracking server credentials: keep private (mode 0600). Clients read\n"
            "# the first two (MESOBENCH_CREDENTIALS=<this file>, or export them).\n"
            f"MLFLOW_TRACKING_USERNAME={made.username}\n"
            f"MLFLOW_TRACKING_PASSWORD={made.password}\n"
            f"MESOBENCH_PG_PASSWORD={made.pg_password}\n",
        )
        return made, True


@dataclass
class Servers:
    data_dir: Path
    pg_port: int
    mlflow: subprocess.Popen
    uri: str
    credentials: Credentials | None = None
    credentials_file: Path | None = None

    def stop(self) -> None:
        """Stop MLflow (its whole process group), then PostgreSQL with a fast shutdown."""
        if self.mlflow.poll() is None:
            os.killpg(self.mlflow.pid, signal.SIGTERM)
            try:
                self.mlflow.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.mlflow.pid, signal.SIGKILL)
                self.mlflow.wait(5)
        stop_postgres(self.data_dir)


def stop_postgres(data: Path) -> None:
    subprocess.run(
        _as_pg_user([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
        capture_output=True,
    )


def _pg_ctl_start(data: Path, root: Path, options: str) -> None:
    subprocess.run(
        _as_pg_user(
            [pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "pg.log")]
            + ["-w", "start"]
        ),
        check=True,
        capture_output=True,
    )


HBA_TRUST = """# written by scripts/mlflow_server.py: this machine only, no password (loopback mode)
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
"""
HBA_PASSWORD = """# written by scripts/mlflow_server.py: every connection needs the role's password
local all all scram-sha-256
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
"""


def init_cluster(root: Path, data: Path) -> None:
    """A new PostgreSQL cluster in ``data`` with the ``mesobench`` superuser."""
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    if (data / "PG_VERSION").exists():
        return
    init = subprocess.run(
        _as_pg_user([pg_bin("initdb"), "-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8"]),
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        raise RuntimeError(
            f"initdb failed in {data} (as root, the `postgres` user must be able to reach "
            f"that directory): {init.stderr.strip()[-500:]}"
        )


def _write_hba(data: Path, text: str) -> None:
    hba = data / "pg_hba.conf"
    hba.write_text(text)
    if os.geteuid() == 0:
        shutil.chown(hba, "postgres")
    hba.chmod(0o600)


def set_role_password(root: Path, data: Path, password: str) -> None:
    """Give the role its password, with PostgreSQL reachable by no one else meanwhile: started
    on its Unix socket only (no TCP), trusted there for this one statement, then stopped. The
    statement goes to ``psql`` on stdin, never on a command line."""
    _write_hba(data, "local all all trust\n")
    _pg_ctl_start(data, root, f"-c listen_addresses='' -k {root}")
    try:
        statement = (
            "SET password_encryption = 'scram-sha-256';\n"
            f"ALTER ROLE {ROLE} WITH PASSWORD '{password}';\n"
        )
        subprocess.run(
            [pg_bin("psql"), "-h", str(root), "-U", ROLE, "-d", "postgres", "-q", "-f", "-"],
            input=statement,
            text=True,
            check=True,
            capture_output=True,
        )
    finally:
        stop_postgres(data)


def start_postgres(
    root: Path, port: int, host: str = "127.0.0.1", password: str | None = None
) -> Path:
    """Start the cluster on ``host:port``: trusted on loopback, or password-only when
    ``password`` is given; create the ``mesobench`` database on first start."""
    data = root / "pgdata"
    init_cluster(root, data)
    if password is not None:
        set_role_password(root, data, password)
    _write_hba(data, HBA_TRUST if password is None else HBA_PASSWORD)
    _pg_ctl_start(data, root, f"-h {host} -p {port} -k {root}")
    env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
    psql = [pg_bin("psql"), "-h", host, "-p", str(port), "-U", ROLE]
    query = f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'"
    exists = subprocess.run(
        [*psql, "-d", "postgres", "-tAc", query],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(
            [*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"],
            check=True,
            env=env,
            capture_output=True,
        )
    return data


def allowed_hosts(host: str, port: int, extra: list[str]) -> list[str]:
    """The ``Host`` headers MLflow accepts: the bound address, this machine's names (and, bound
    to every interface, their addresses), loopback, and ``extra``; each with any port."""
    names = {host, "localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()}
    if host in ("0.0.0.0", "::"):
        for name in (socket.gethostname(), socket.getfqdn()):
            with contextlib.suppress(OSError):
                names |= {info[4][0] for info in socket.getaddrinfo(name, port)}
    names.discard("0.0.0.0")
    names.discard("::")
    shown = sorted(f"[{n}]" if ":" in n else n for n in names if n)
    patterns = [p for n in shown for p in (n, f"{n}:*")]
    return patterns + [h for h in extra if h]


def auth_wanted(host: str, auth: str) -> bool:
    """Whether the servers must authenticate: always beyond loopback; ``--auth on`` anywhere.
    A non-loopback host with ``--auth off`` is refused (exit code 2)."""
    if auth not in AUTH_CHOICES:
        raise SystemExit(f"--auth must be one of {AUTH_CHOICES}, got {auth!r}")
    local = host in LOOPBACK
    if auth == "off" and not local:
        print(
            f"error: refusing to serve {host} without authentication: anyone who can reach it "
            "could read, overwrite or delete every run, and connect to PostgreSQL directly. "
            "Drop `--auth off` (beyond 127.0.0.1/localhost/::1 authentication is on by "
            "default: a generated password, kept in --dir) or bind to 127.0.0.1.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return auth == "on" or not local


def _auth_files(root: Path, creds: Credentials, host: str, pg_port: int) -> dict[str, str]:
    """The MLflow server's environment for authentication: its basic-auth config (admin user,
    user store) and libpq's password file, both 0600 in ``root``."""
    ini = configparser.ConfigParser()
    ini["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": f"sqlite:///{root / 'basic_auth.db'}",
        "admin_username": creds.username,
        "admin_password": creds.password,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    text = io.StringIO()
    ini.write(text)
    _write_private(
        root / "basic_auth.ini", text.getvalue()
    )  # never readable by others, not even briefly
    _write_private(root / "pgpass", f"{host}:{pg_port}:{DATABASE}:{ROLE}:{creds.pg_password}\n")
    secret = root / "flask_secret"  # signs the basic-auth app's CSRF tokens; kept across restarts
    if not secret.exists():
        _write_private(secret, secrets.token_urlsafe(32))
    return {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret.read_text().strip(),
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "PGPASSFILE": str(root / "pgpass"),
    }


def _pg_address(host: str) -> str:
    """Where MLflow reaches PostgreSQL: a wildcard bind is reached on loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def start(
    root: Path,
    pg_port: int = 5433,
    port: int = 5000,
    host: str = "127.0.0.1",
    timeout_s: float = 120.0,
    *,
    auth: str = "auto",
    extra_hosts: list[str] | None = None,
) -> Servers:
    """Start PostgreSQL and an MLflow server on it; returns once the server answers."""
    root = root.resolve()
    use_auth = auth_wanted(host, auth)
    root.mkdir(parents=True, exist_ok=True)
    creds, created = Credentials.load_or_create(root) if use_auth else (None, False)
    data = start_postgres(root, pg_port, host, creds.pg_password if creds else None)
    pg_host = _pg_address(host)
    env = dict(os.environ)
    command = [sys.executable, "-m", "mlflow", "server"]
    if creds is not None:
        env.update(_auth_files(root, creds, pg_host, pg_port))
        command += ["--app-name", "basic-auth"]
    (root / "artifacts").mkdir(exist_ok=True)
    command += [
        "--backend-store-uri",
        f"postgresql+psycopg2://{ROLE}@{pg_host}:{pg_port}/{DATABASE}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "2",
        "--allowed-hosts",
        ",".join(allowed_hosts(host, port, extra_hosts or [])),
    ]
    log = open(root / "mlflow.log", "ab")  # noqa: SIM115 -- owned by the server process
    mlflow = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    servers = Servers(data, pg_port, mlflow, f"http://{url_host}:{port}", creds)
    if creds is not None:
        servers.credentials_file = root / CREDENTIALS
        if created:
            print(
                f"Credentials created (printed once): user {creds.username}, password "
                f"{creds.password}; kept in {servers.credentials_file} (mode 0600)."
            )
    _wait_until_up(servers, root, timeout_s)
    return servers


def _wait_until_up(servers: Servers, root: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if servers.mlflow.poll() is not None:
            servers.stop()
            raise RuntimeError(f"mlflow server exited; see {root / 'mlflow.log'}")
        try:
            with urllib.request.urlopen(f"{servers.uri}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    servers.stop()
    raise RuntimeError(f"mlflow server did not answer in {timeout_s:.0f}s; see {root}/mlflow.log")


class _Stop(Exception):
    """Raised by the signal handler: leave the wait and stop both servers."""


def _on_signal(signum: int, _frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".cache/mlflow-server"))
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--pg-port", type=int, default=5433)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--auth",
        default="auto",
        choices=AUTH_CHOICES,
        help="auto (default): on unless --host is loopback; on; off (loopback only)",
    )
    parser.add_argument(
        "--allowed-hosts",
        default="",
        help="more Host headers to accept, comma-separated (e.g. head-node,head-node.cluster)",
    )
    args = parser.parse_args(argv)
    extra = [h.strip() for h in args.allowed_hosts.split(",") if h.strip()]
    servers = start(args.dir, args.pg_port, args.port, args.host, auth=args.auth, extra_hosts=extra)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    how = (
        f" Clients: MESOBENCH_CREDENTIALS={servers.credentials_file} (or export "
        "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from it)."
        if servers.credentials_file
        else " No authentication (loopback)."
    )
    print(
        f"MLflow tracking server on {servers.uri} (PostgreSQL on {args.host}:{args.pg_port}, "
        f"data in {args.dir}). Use: tracking=server tracking.uri={servers.uri}.{how} "
        "Ctrl-C or SIGTERM stops both.",
        flush=True,
    )
    try:
        servers.mlflow.wait()
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the stop short
        servers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
