"""pytest plugin: a real PostgreSQL server for ``@pytest.mark.postgres`` tests.

Enable with ``pytest_plugins = ["tests.postgres_fixtures"]`` in ``tests/conftest.py`` (or
``-p tests.postgres_fixtures``).

* ``postgres_server`` (session): a server started by ``deploy.postgres`` from the PostgreSQL
  installed on the machine, in a fresh temporary directory (fsync off: it is thrown away), and
  stopped and deleted at the end of the session. Its ``ledger`` database holds the ledger's schema,
  made append-only for the ``ledger`` role (owned by ``ledger_owner``), and is the template of
  every test database. With ``LEDGER_TEST_POSTGRES_URL`` set, that server is used instead (its
  role must be allowed to ``CREATE DATABASE``; it gets empty databases and creates the schema).
* ``postgres_url`` (function): the **ledger role's** URL of a database created for the test
  alone (a copy of the template: schema, grants and triggers), dropped after it. The role may
  select and insert, not update, delete or truncate, and owns nothing.

The PostgreSQL tests are real-parts tests, like the Kafka ones: when PostgreSQL or psycopg is not
installed they *fail*, saying what to install. ``LEDGER_TEST_SKIP_POSTGRES=1`` skips them
instead, on explicit request only.

When a test using a started server fails, its report gets a section with the server log's tail.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from deploy import postgres

URL_ENV = "LEDGER_TEST_POSTGRES_URL"
SKIP_ENV = "LEDGER_TEST_SKIP_POSTGRES"
INSTALL_HINT = (
    "install PostgreSQL (Debian: apt-get install postgresql) and the test extra "
    "(python3 -m pip install -e '.[test]'), or set LEDGER_TEST_SKIP_POSTGRES=1 to skip "
    "these tests on purpose"
)

_databases = itertools.count(1)
_started: list[PostgresHandle] = []  # the server this session started, for failure reports


@dataclass(frozen=True)
class PostgresHandle:
    """The session's server: an admin URL whose role may create databases (the owner role of a
    started server) and, for a started server, the append-only ledger role's URL."""

    url: str = field(repr=False)  # holds the password
    data_dir: Path | None = None  # None for an external server (LEDGER_TEST_POSTGRES_URL)
    ledger_url: str | None = field(default=None, repr=False)  # the ledger role's, template db
    template: str | None = None  # the database holding the append-only schema

    @property
    def log_path(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / postgres.LOG_FILE

    def admin_url(self, name: str) -> str:
        """The admin URL pointing at database ``name`` instead."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def database_url(self, name: str) -> str:
        """The URL the ledger uses for database ``name``: the ledger role's on a started
        server, the admin's on an external one."""
        parts = urlsplit(self.ledger_url or self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))


def _skipped_on_request() -> bool:
    return os.environ.get(SKIP_ENV, "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresHandle]:
    """A running PostgreSQL for the whole session (or ``LEDGER_TEST_POSTGRES_URL``)."""
    if _skipped_on_request():
        pytest.skip(f"{SKIP_ENV}=1: PostgreSQL tests skipped on request")
    try:
        import psycopg  # noqa: F401  (the ledger's PostgreSQL store needs it)
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"the PostgreSQL store needs psycopg with its pool ({exc}); {INSTALL_HINT}")
    external = os.environ.get(URL_ENV)
    if external:
        yield PostgresHandle(external)
        return
    # Not pytest's tmp_path: as root the server runs as `postgres`, which cannot enter
    # /tmp/pytest-of-root (mode 0700).
    data_dir = Path(tempfile.mkdtemp(prefix="trial-ledger-postgres-"))
    try:
        try:
            ledger_url = postgres.start(data_dir, durable=False)
        except postgres.PostgresError as exc:
            pytest.fail(f"could not start PostgreSQL for the tests: {exc}\n{INSTALL_HINT}")
        server = postgres.load(data_dir)
        assert server is not None
        handle = PostgresHandle(
            server.owner_url(),
            data_dir,
            ledger_url=ledger_url,
            template=postgres.DEFAULT_DATABASE,
        )
        _started.append(handle)
        yield handle
    finally:
        _started.clear()
        try:
            if postgres.load(data_dir) is not None:
                postgres.stop(data_dir)
        except postgres.PostgresError as exc:  # pragma: no cover - teardown must not mask results
            warnings.warn(f"stopping PostgreSQL in {data_dir}: {exc}", stacklevel=1)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def database_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")
    return f"t{next(_databases):03d}_{slug}"[:63].rstrip("_")


def create_database(handle: PostgresHandle, name: str) -> str:
    """Create database ``name`` (a copy of the append-only template on a started server, empty
    on an external one); return the ledger's URL of it (``PostgresHandle.database_url``)."""
    import psycopg
    from psycopg import sql

    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if handle.template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(handle.template))
    with psycopg.connect(handle.url, autocommit=True) as admin:
        admin.execute(create)
    return handle.database_url(name)


def drop_database(handle: PostgresHandle, name: str, patience: float = 15.0) -> None:
    """Drop database ``name``, ending any session still connected to it.

    A session the ledger's role has just closed can still be exiting on the server, and ending
    another role's session takes a privilege the owner does not have (pg_signal_backend): the
    drop is tried again until such sessions are gone, for `patience` seconds at most (a session
    left open by the code under test still fails the test, then)."""
    import psycopg
    from psycopg import errors, sql

    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
    deadline = time.monotonic() + patience
    while True:
        try:
            with psycopg.connect(handle.url, autocommit=True) as admin:
                admin.execute(drop)
            return
        except errors.InsufficientPrivilege:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def postgres_url(
    postgres_server: PostgresHandle, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The ledger's URL of a new database for this test alone (dropped afterwards): on a started
    server, the append-only role's URL of a copy of the template; else an empty database."""
    name = database_name(request.node.name)
    yield create_database(postgres_server, name)
    drop_database(postgres_server, name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the server log's tail to the report of a failed PostgreSQL test."""
    report: pytest.TestReport = yield
    if report.failed and item.get_closest_marker("postgres") is not None:
        for handle in _started:
            if handle.log_path is not None:
                report.sections.append(
                    (f"PostgreSQL log {handle.log_path}", postgres.log_tail(handle.log_path, 30))
                )
    return report
