"""The local PostgreSQL server from deploy/postgres.py: started, reached, stopped for real."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
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
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 42 AS answer")

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
