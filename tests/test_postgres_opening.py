"""Opening a PostgreSQL store from the command line (an operator's probe): a read creates
nothing, a database that is no ledger store is bad input as a SQLite file is, a store that
cannot be reached says why in the server's words, and no password is ever printed."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from ledger.cli import main
from ledger.cli_plumbing import EXIT_BAD_INPUT, EXIT_FAILED
from tests.postgres_fixtures import PostgresHandle, database_name, drop_database

pytestmark = pytest.mark.postgres


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def without_password(url: str) -> tuple[str, str]:
    """The URL without its password, and the password (for PGPASSWORD)."""
    parts = urlsplit(url)
    password = parts.password or ""
    netloc = parts.netloc.replace(f":{password}@", "@", 1) if password else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc)), password


def ledger_tables(admin_url: str) -> list[str]:
    import psycopg

    with psycopg.connect(admin_url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.fixture
def plain_database(
    postgres_server: PostgresHandle, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The owner's URL of a new, empty database: no ledger was ever made in it."""
    import psycopg
    from psycopg import sql

    name = database_name(request.node.name)
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield postgres_server.admin_url(name)
    drop_database(postgres_server, name)


@pytest.mark.parametrize(
    "argv",
    [["cohorts"], ["history", "01-001"], ["verify"], ["checkpoint"], ["export", "--out", "OUT"]],
    ids=["cohorts", "history", "verify", "checkpoint", "export"],
)
def test_a_read_of_a_database_that_is_no_ledger_store_is_bad_input_and_creates_nothing(
    argv: list[str], plain_database: str, tmp_path: object,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the owner, who may create tables: a read of an empty database made the ledger's
    tables (the README: a read never creates a store), then said "holds no trial"; a database
    without them was exit 3 with advice to create them. Now: exit 2, one line, no table."""
    url, password = without_password(plain_database)
    monkeypatch.setenv("PGPASSWORD", password)
    argv = [str(tmp_path) + "/out" if arg == "OUT" else arg for arg in argv]
    code, err = run(capsys, *argv, "--store", url)
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "is not a ledger store: it has no ledger tables" in err
    assert ledger_tables(plain_database) == []


def test_a_writer_as_the_owner_still_makes_the_tables(
    plain_database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledger init` as the owner of an empty database makes the store, as before."""
    url, password = without_password(plain_database)
    monkeypatch.setenv("PGPASSWORD", password)
    assert run(capsys, "init", "--store", url)[0] == 0
    assert ledger_tables(plain_database)
    assert run(capsys, "cohorts", "--store", url)[0] == 0


def test_a_database_that_does_not_exist_is_named_in_the_servers_words(
    postgres_server: PostgresHandle, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A misspelt database name was reported as the pool's "couldn't get a connection after
    5.00 sec", the same line as a server that is down; the server's answer is given now."""
    url, password = without_password(postgres_server.admin_url("no_such_ledger"))
    monkeypatch.setenv("PGPASSWORD", password)
    code, err = run(capsys, "cohorts", "--store", url + "?connect_timeout=2")
    assert code == EXIT_FAILED
    assert err.count("\n") == 1 and 'database "no_such_ledger" does not exist' in err
    assert password not in err


def test_a_wrong_password_is_named_as_such_and_not_printed(
    postgres_server: PostgresHandle, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = without_password(postgres_server.url)
    monkeypatch.setenv("PGPASSWORD", "not-the-password-0451")
    code, err = run(capsys, "cohorts", "--store", url + "?connect_timeout=2")
    assert code == EXIT_FAILED
    assert err.count("\n") == 1 and "password authentication failed" in err
    assert "not-the-password-0451" not in err


def test_a_url_without_a_database_never_prints_its_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL (with its password, from LEDGER_STORE, where the README says it may be) was
    echoed whole when it named no database."""
    monkeypatch.setenv("LEDGER_STORE", "postgresql://ledger:s3cr3t-pw@127.0.0.1:1/")
    code, err = run(capsys, "cohorts")
    assert code == EXIT_BAD_INPUT
    assert "names no database" in err and "s3cr3t-pw" not in err and ":***@" in err
