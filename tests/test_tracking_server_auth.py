"""A shared tracking server beyond loopback: it authenticates, answers to its host names, refuses
to run open, stops on SIGTERM, and no secret reaches a run (scripts/mlflow_server.py).

The server binds 127.0.0.2, a second loopback address of this machine: it counts as "beyond
loopback" for the server (only 127.0.0.1, localhost and ::1 may go without a password) while
nothing outside the machine can reach it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import pytest

from conftest import REPO, free_port, load_script, run_cli, stored_runs
from mesobench.errors import ConfigError
from mesobench.store import credentials

# One xdist worker takes this module's tests: they share a module-scoped fixture, built once.
pytestmark = pytest.mark.xdist_group("tracking_server_auth")

HOST = "127.0.0.2"
launcher = load_script("mlflow_server")


def _can_bind(host: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
    return True


# ---- without servers ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.2", "10.1.2.3", "head-node"])
def test_a_host_beyond_loopback_without_authentication_is_refused(host, capsys):
    with pytest.raises(SystemExit) as stop:
        launcher.auth_wanted(host, "off")
    assert stop.value.code == 2
    assert "without authentication" in capsys.readouterr().err
    assert launcher.auth_wanted(host, "auto") is True  # on by default there


def test_loopback_may_go_without_a_password_and_may_ask_for_one():
    assert launcher.auth_wanted("127.0.0.1", "auto") is False
    assert launcher.auth_wanted("localhost", "off") is False
    assert launcher.auth_wanted("127.0.0.1", "on") is True


def test_the_server_answers_to_its_host_names_and_addresses_with_any_port():
    hosts = launcher.allowed_hosts("0.0.0.0", 5000, ["head-node.cluster"])
    for name in (socket.gethostname(), socket.getfqdn(), "127.0.0.1"):
        assert name in hosts and f"{name}:*" in hosts
    assert "head-node.cluster" in hosts and "0.0.0.0" not in hosts
    assert "127.0.0.2:*" in launcher.allowed_hosts("127.0.0.2", 5000, [])


def test_credentials_are_private_random_and_reused(tmp_path):
    made, created = launcher.Credentials.load_or_create(tmp_path)
    again, created_again = launcher.Credentials.load_or_create(tmp_path)
    assert created and not created_again and made == again
    assert (tmp_path / "credentials.env").stat().st_mode & 0o777 == 0o600
    (tmp_path / "elsewhere").mkdir()
    other, _ = launcher.Credentials.load_or_create(tmp_path / "elsewhere")
    assert len(made.password) >= 32 and other.password != made.password


def test_clients_read_the_credentials_file_and_never_a_uri_with_a_password(tmp_path):
    made, _ = launcher.Credentials.load_or_create(tmp_path)
    with mock.patch.dict(os.environ):  # load() writes os.environ: restore all of it afterwards
        for key in (credentials.USERNAME, credentials.PASSWORD):
            os.environ.pop(key, None)
        os.environ[credentials.FILE_VARIABLE] = str(tmp_path / "credentials.env")
        credentials.load()
        assert os.environ[credentials.PASSWORD] == made.password
        assert os.environ[credentials.USERNAME] == made.username
        os.environ[credentials.FILE_VARIABLE] = str(tmp_path / "missing.env")
        del os.environ[credentials.PASSWORD]
        with pytest.raises(ConfigError, match="no such file"):
            credentials.load()
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_USERNAME"):
        credentials.refuse_secret_in_uri("http://mesobench:s3cret@head-node:5000")
    credentials.refuse_secret_in_uri("http://head-node:5000")


# ---- a real server on 127.0.0.2 --------------------------------------------------------------


def _start(root: Path, port: int, pg_port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "mlflow_server.py"), "--dir", str(root)]
        + ["--host", HOST, "--port", str(port), "--pg-port", str(pg_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "MLflow tracking server on" in line:
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"the server did not start: {line}{proc.stdout.read()}")
    raise RuntimeError("the server did not start in 180 s")


@pytest.fixture(scope="module")
def shared():
    """The server script on 127.0.0.2 with its defaults (authentication on)."""
    try:
        launcher.pg_bin("initdb")
    except SystemExit as exc:
        pytest.skip(f"PostgreSQL is not installed here: {exc}")
    if shutil.which("runuser") is None or not _can_bind(HOST):
        pytest.skip(f"needs runuser and the loopback address {HOST}")
    root = Path(tempfile.mkdtemp(prefix="mesobench-auth-"))
    root.chmod(0o755)
    ports = {"port": free_port(), "pg_port": free_port()}
    proc = _start(root / "server", **ports)
    yield {"proc": proc, "root": root / "server", **ports}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    shutil.rmtree(root, ignore_errors=True)


def _get(url: str, auth: tuple[str, str] | None = None, host: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_beyond_loopback_mlflow_answers_401_and_postgresql_wants_the_password(shared):
    values = credentials.read_file(shared["root"] / "credentials.env")
    auth = (values[credentials.USERNAME], values[credentials.PASSWORD])
    url = f"http://{HOST}:{shared['port']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _get(url) == 401
    assert _get(url, auth) == 200
    assert _get(url, auth, host=f"{socket.gethostname()}:{shared['port']}") == 200  # by name
    assert _get(url, auth, host="rebinding.example") == 403
    psql = [launcher.pg_bin("psql"), "-h", HOST, "-p", str(shared["pg_port"]), "-U", "mesobench"]
    query = [*psql, "-d", "mesobench", "-w", "-tAc", "SELECT 1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    refused = subprocess.run(query, capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "password" in refused.stderr
    env["PGPASSWORD"] = values["MESOBENCH_PG_PASSWORD"]
    assert subprocess.run(query, capture_output=True, text=True, env=env).stdout.strip() == "1"
    for name in ("credentials.env", "pgpass", "basic_auth.ini", "flask_secret"):
        assert (shared["root"] / name).stat().st_mode & 0o077 == 0, name


def _secrets(shared) -> list[str]:
    values = credentials.read_file(shared["root"] / "credentials.env")
    return [values[credentials.PASSWORD], values["MESOBENCH_PG_PASSWORD"]]


def _sweep(shared, tmp_path, env):
    tmp_path.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "mesobench.run", "-m", "model=logreg", "task=synthetic/c1"]
        + ["fold=0,1", "tracking=server", f"tracking.uri=http://{HOST}:{shared['port']}"]
        + ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_a_sweep_with_the_credentials_lands_resumes_reports_and_leaks_no_secret(shared, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    uri = f"http://{HOST}:{shared['port']}"
    without = _sweep(shared, tmp_path / "none", env)
    assert without.returncode == 2 and "refused this client" in without.stderr
    env[credentials.FILE_VARIABLE] = str(shared["root"] / "credentials.env")
    first = _sweep(shared, tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    again = _sweep(shared, tmp_path, env)
    assert "2 skipped" in again.stdout + again.stderr
    aggregate = [sys.executable, "-m", "mesobench.aggregate", "tracking=server"]
    aggregate += [f"tracking.uri={uri}", f"out_dir={tmp_path / 'report'}", "metric=accuracy"]
    aggregate += ["filters.models=[logreg]"]
    bare = {k: v for k, v in env.items() if k != credentials.FILE_VARIABLE}
    refused = subprocess.run(aggregate, cwd=tmp_path, env=bare, capture_output=True, text=True)
    said = refused.stdout + refused.stderr  # the aggregator logs its error (Hydra: to stdout)
    assert refused.returncode == 2 and "refused this client" in said, said[-2000:]
    report = subprocess.run(
        aggregate, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert report.returncode == 0, report.stderr[-3000:]
    os.environ.update({k: env[k] for k in (credentials.FILE_VARIABLE,)})
    credentials.load()
    runs = [r for r in stored_runs(uri) if r.data.tags.get("model") == "logreg"]
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    written = [str(r.data.params) + str(r.data.tags) for r in stored_runs(uri, parents=True)]
    written += [p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file()]
    for secret in _secrets(shared):
        assert not any(secret in text for text in written)


@pytest.mark.slow
def test_sigterm_stops_both_servers_and_a_restart_finds_every_run(shared):
    uri = f"http://{HOST}:{shared['port']}"
    os.environ[credentials.FILE_VARIABLE] = str(shared["root"] / "credentials.env")
    credentials.load()
    before = {r.info.run_id for r in stored_runs(uri, parents=True)}
    shared["proc"].send_signal(signal.SIGTERM)
    assert shared["proc"].wait(60) == 0
    for port in (shared["port"], shared["pg_port"]):
        with socket.socket() as sock:
            assert sock.connect_ex((HOST, port)) != 0, f"port {port} still answers"
    leftover = subprocess.run(["pgrep", "-f", str(shared["root"])], capture_output=True)
    assert leftover.stdout.strip() == b"", "a server process outlived SIGTERM"
    shared["proc"] = _start(shared["root"], shared["port"], shared["pg_port"])
    assert {r.info.run_id for r in stored_runs(uri, parents=True)} == before


def test_the_runner_refuses_a_tracking_uri_that_carries_a_password(tmp_path):
    proc = run_cli(
        "mesobench.run",
        "model=logreg",
        "task=synthetic/c1",
        "tracking=server",
        "tracking.uri=http://mesobench:s3cret@127.0.0.1:9",
        f"hydra.run.dir={tmp_path}/run",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 2
    assert "carries credentials" in proc.stderr and "s3cret" not in proc.stderr
