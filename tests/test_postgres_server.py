"""The local PostgreSQL server from deploy/postgres.py: started, reached, stopped for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from deploy import postgres


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A new directory the server's OS user can reach (pytest's tmp_path is root-only as root)."""
    base = Path(tempfile.mkdtemp(prefix="trial-ledger-pg-deploy-"))
    base.chmod(0o755)
    try:
        yield base / "pg"
    finally:
        if postgres.load(base / "pg") is not None:
            postgres.stop(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


def scalar(url: str, query: str) -> object:
    """The first value of the first row `query` returns, over a new connection to `url`."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.postgres
def test_start_stop_start_keeps_the_url_and_the_data(data_dir: Path) -> None:
    """`start` is idempotent; after `stop` the next `start` serves the same URL and data."""
    import psycopg

    url = postgres.start(data_dir)
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.username, parts.path) == (
        "postgresql",
        "127.0.0.1",
        "ledger",
        "/ledger",
    )
    pid = postgres.status(data_dir)["pid"]
    assert postgres.start(data_dir) == url
    assert postgres.status(data_dir)["pid"] == pid
    assert scalar(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'") == 0
    server = postgres.load(data_dir)
    assert server is not None
    with psycopg.connect(server.owner_url(), autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 42 AS answer")
        conn.execute("GRANT SELECT ON kept TO ledger")

    postgres.stop(data_dir)
    info = postgres.status(data_dir)
    assert (info["running"], info["pid"]) == (False, None)
    postgres.stop(data_dir)  # stopping a stopped server does nothing

    assert postgres.start(data_dir) == url
    assert scalar(url, "SELECT answer FROM kept") == 42
    other = postgres.start(data_dir, database="second")
    assert other == url.rsplit("/", 1)[0] + "/second"
    assert scalar(other, "SELECT current_database()") == "second"
    assert postgres.status(data_dir)["databases"] == ["ledger", "second"]


@pytest.mark.postgres
def test_a_server_killed_hard_starts_again_at_once(data_dir: Path) -> None:
    """kill -9 of the postmaster, then `start` right away: it failed ("lock file postmaster.pid
    already exists": the dead postmaster not yet reaped, its backends still exiting) though
    `status` said it was not running. It waits for the old cluster's processes and starts, with
    the same URL and the data written before the crash."""
    import os
    import signal

    url = postgres.start(data_dir)
    server = postgres.load(data_dir)
    assert server is not None
    import psycopg

    with psycopg.connect(server.owner_url(), autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 7 AS answer")
        conn.execute("GRANT SELECT ON kept TO ledger")
    pid = postgres.status(data_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while postgres.status(data_dir)["running"]:  # as the operator saw it: "running": false
        assert time.monotonic() < deadline, "the killed postmaster is still running"
        time.sleep(0.05)
    assert postgres.start(data_dir) == url
    assert postgres.status(data_dir)["running"] is True
    assert scalar(url, "SELECT answer FROM kept") == 7
    postgres.stop(data_dir)


@pytest.mark.postgres
def test_the_url_password_is_checked_and_the_files_are_private(data_dir: Path) -> None:
    """TCP connections need the password (scram-sha-256); the cluster and state are 0700/0600."""
    import psycopg

    url = postgres.start(data_dir)
    parts = urlsplit(url)
    wrong = url.replace(f":{parts.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10).close()
    assert scalar(url, "SELECT current_user") == "ledger"
    account = postgres.server_account()
    for path, mode in (
        (data_dir, 0o700),
        (data_dir / "pgdata", 0o700),
        (data_dir / "run", 0o700),
        (data_dir / "postgres.json", 0o600),
    ):
        info = path.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (account.uid, mode), path


@pytest.mark.postgres
def test_the_password_stays_off_command_lines_and_out_of_status(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No program `start` runs gets a password as an argument or on stdin (the ledger role's
    only in the URL check's PGPASSWORD, the owner's only in the schema step's LEDGER_STORE);
    `status` shows both as ***."""
    calls: list[tuple[list[str], str, dict[str, str]]] = []
    real_run = subprocess.run

    def spy(cmd: list[str], **kwargs: Any) -> Any:
        calls.append((list(cmd), kwargs.get("input") or "", dict(kwargs.get("env") or {})))
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    url = postgres.start(data_dir)
    password = urlsplit(url).password
    server = postgres.load(data_dir)
    assert password and server is not None and server.owner_password
    owner_url = server.owner_url()
    assert [Path(cmd[0]).name for cmd, _, _ in calls][-2:] == ["psql", "psql"]
    for cmd, stdin, _ in calls:
        for secret in (password, server.owner_password):
            assert secret not in " ".join(cmd) + stdin, cmd
    environments = [env for _, _, env in calls]
    assert [env.get("PGPASSWORD") for env in environments].count(password) == 1
    assert [env.get("LEDGER_STORE") for env in environments].count(owner_url) == 1
    assert not any(server.owner_password in env.get("PGPASSWORD", "") for env in environments)

    assert postgres.main(["status", str(data_dir)]) == 0
    shown = capsys.readouterr().out
    info = json.loads(shown)
    assert info["url"] == url.replace(f":{password}@", ":***@")
    assert info["owner_url"] == owner_url.replace(f":{server.owner_password}@", ":***@")
    assert password not in shown and server.owner_password not in shown


@pytest.mark.postgres
def test_a_url_that_does_not_connect_is_reported_without_its_password(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the URL check fails, `start`'s error names the URL with *** for the password."""
    verifier = postgres._scram_verifier
    ledger_password: list[str] = []  # the first verifier `start` asks for is the ledger role's

    def wrong_for_the_ledger_role(password: str) -> str:
        if not ledger_password:
            ledger_password.append(password)
            return verifier("another")
        return verifier(password)

    monkeypatch.setattr(postgres, "_scram_verifier", wrong_for_the_ledger_role)
    assert postgres.main(["start", str(data_dir)]) == 3
    out, err = capsys.readouterr()
    server = postgres.load(data_dir)
    assert server is not None
    assert "password authentication failed" in err
    assert f"but postgresql://ledger:***@127.0.0.1:{server.port}/ledger does not connect" in err
    assert server.password not in out + err


def test_start_refuses_a_directory_holding_something_else(tmp_path: Path) -> None:
    """A non-empty directory that no `start` made is left alone, with the reason."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(postgres.PostgresError, match="not empty"):
        postgres.start(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another OS user")
def test_start_refuses_a_directory_the_server_user_cannot_reach() -> None:
    """As root, a data dir inside a root-only folder is refused, naming the folder."""
    private = Path(tempfile.mkdtemp(prefix="trial-ledger-private-"))  # mode 0700, root's
    try:
        with pytest.raises(postgres.PostgresError, match=f"{private} is not searchable"):
            postgres.start(private / "pg")
    finally:
        shutil.rmtree(private)


def test_a_machine_without_postgresql_gets_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No directory with the server binaries: the error says so and how to install them."""
    monkeypatch.delenv(postgres.BIN_ENV, raising=False)
    monkeypatch.setattr(postgres, "_SERVER_BINARIES", ("initdb", "no-such-postgres-binary"))
    with pytest.raises(postgres.PostgresError, match="PostgreSQL is not installed") as error:
        postgres.find_bin_dir()
    assert "apt-get install postgresql" in str(error.value)


def test_stop_without_a_server_is_an_error(tmp_path: Path) -> None:
    """`stop` on a directory where no server was started says so."""
    with pytest.raises(postgres.PostgresError, match="no PostgreSQL server was started"):
        postgres.stop(tmp_path)
