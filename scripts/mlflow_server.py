"""Start a shared MLflow tracking server: PostgreSQL backend store, served artifacts, loopback.

    python scripts/mlflow_server.py                  # what `make server` runs; Ctrl-C stops both
    python -m mesobench.run ... tracking=server tracking.uri=http://127.0.0.1:5000

PostgreSQL (Debian's ``postgresql`` package or any install with ``initdb``/``pg_ctl`` on PATH or
under /usr/lib/postgresql/*/bin) gets a private cluster in ``--dir``, listening on 127.0.0.1
only, trust authentication for the local ``mesobench`` role. As root, PostgreSQL runs as the
``postgres`` system user (it refuses to run as root). Both servers bind to 127.0.0.1 unless
``--host`` says otherwise; put them behind an authenticating proxy before exposing them.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROLE = DATABASE = "mesobench"


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


@dataclass
class Servers:
    data_dir: Path
    pg_port: int
    mlflow: subprocess.Popen
    uri: str

    def stop(self) -> None:
        if self.mlflow.poll() is None:
            os.killpg(self.mlflow.pid, signal.SIGTERM)
            try:
                self.mlflow.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.mlflow.pid, signal.SIGKILL)
        subprocess.run(
            _as_pg_user([pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "stop"]),
            capture_output=True,
        )


def start_postgres(root: Path, port: int, host: str = "127.0.0.1") -> Path:
    data = root / "pgdata"
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    if not (data / "PG_VERSION").exists():
        init = subprocess.run(
            _as_pg_user(
                [pg_bin("initdb"), "-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8"]
            ),
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            raise RuntimeError(
                f"initdb failed in {data} (as root, the `postgres` user must be able to reach "
                f"that directory): {init.stderr.strip()[-500:]}"
            )
    options = f"-h {host} -p {port} -k {root}"
    subprocess.run(
        _as_pg_user(
            [
                pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "pg.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    exists = subprocess.run(
        [
            pg_bin("psql"),
            "-h",
            host,
            "-p",
            str(port),
            "-U",
            ROLE,
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(
            [pg_bin("createdb"), "-h", host, "-p", str(port), "-U", ROLE, DATABASE], check=True
        )
    return data


def start(
    root: Path,
    pg_port: int = 5433,
    port: int = 5000,
    host: str = "127.0.0.1",
    timeout_s: float = 120.0,
) -> Servers:
    """Start PostgreSQL and an MLflow server on it; returns once the server answers."""
    root = root.resolve()
    data = start_postgres(root, pg_port, host)
    store = f"postgresql+psycopg2://{ROLE}@{host}:{pg_port}/{DATABASE}"
    (root / "artifacts").mkdir(exist_ok=True)
    log = open(root / "mlflow.log", "ab")  # noqa: SIM115 -- owned by the server process
    mlflow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            store,
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    servers = Servers(data, pg_port, mlflow, f"http://{host}:{port}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if mlflow.poll() is not None:
            servers.stop()
            raise RuntimeError(f"mlflow server exited; see {root / 'mlflow.log'}")
        try:
            with urllib.request.urlopen(f"{servers.uri}/health", timeout=2) as reply:
                if reply.status == 200:
                    return servers
        except OSError:
            time.sleep(0.5)
    servers.stop()
    raise RuntimeError(f"mlflow server did not answer in {timeout_s:.0f}s; see {root}/mlflow.log")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".cache/mlflow-server"))
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--pg-port", type=int, default=5433)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    servers = start(args.dir, args.pg_port, args.port, args.host)
    print(
        f"MLflow tracking server on {servers.uri} (PostgreSQL on {args.host}:{args.pg_port},"
        f" data in {args.dir}). Use: tracking=server tracking.uri={servers.uri}. Ctrl-C stops."
    )
    try:
        servers.mlflow.wait()
    except KeyboardInterrupt:
        pass
    finally:
        servers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
