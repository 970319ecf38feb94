"""Issue 13 item 7: on PostgreSQL the ledger's role can append to its store and read it, never
rewrite it. Real server (tests/postgres_fixtures.py), real attacks, as the role the ledger uses.

The store is made by `deploy.postgres` (schema created by the owner role, grants and triggers as
the superuser); `postgres_server.url` is the owner's, `postgres_url` the ledger role's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.application import Delivery, LedgerService
from tests.builders import TRIAL_ID, FixedClock, Script, lines
from tests.postgres_fixtures import (
    PostgresHandle,
    create_database,
    database_name,
    drop_database,
)

pytestmark = pytest.mark.postgres

EVENTS = "trialledger_events"
TRACKING = "trialledger_tracking"
TOPIC = "trial.submissions"
DAY0 = date(2025, 1, 6)


def submissions(first: int, count: int) -> list[str]:
    """`count` enrolments in cohort A, subjects 01-<first>... (distinct event ids)."""
    script = Script()
    for _ in range(first):
        next(script.counter)
    return lines([script.enroll(f"01-{n:03d}", "A", DAY0) for n in range(first, first + count)])


def deliveries(items: list[str], first_offset: int) -> list[Delivery]:
    return [
        Delivery(raw.encode(), TOPIC, 0, offset) for offset, raw in enumerate(items, first_offset)
    ]


@dataclass(frozen=True)
class Store:
    """A database holding a few recorded events and a Kafka offset."""

    ledger_url: str  # the append-only role's
    owner_url: str


@pytest.fixture(scope="module")
def store(postgres_server: PostgresHandle) -> Iterator[Store]:
    """One store for the module's attacks (each must leave it unchanged), filled by the ledger
    through the ledger role: trial opened, 3 enrolments, a tracked batch of 2 more (rejected:
    cohort A is full; the rejections are stored too) at offsets 0-1."""
    if postgres_server.template is None:
        pytest.skip("an external server (LEDGER_TEST_POSTGRES_URL) has no append-only role")
    name = database_name("append_only_attacks")
    url = create_database(postgres_server, name)
    with LedgerService(url, clock=FixedClock()) as service:
        service.ensure_trial()
        assert service.submit_many(submissions(1, 3)).accepted == 3
        assert len(service.submit_tracked(deliveries(submissions(4, 2), 0)).rejected) == 2
        assert service.upstream_position(TOPIC, 0) == 1
    yield Store(url, postgres_server.admin_url(name))
    drop_database(postgres_server, name)


def fingerprint(url: str) -> tuple[object, ...]:
    """Everything stored: event count, a digest of every event, the offsets."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        events = conn.execute(
            f"SELECT count(*), md5(string_agg(notification_id || ':' || originator_id || ':' "
            f"|| originator_version || ':' || topic || ':' || encode(state, 'hex'), ',' "
            f"ORDER BY notification_id)) FROM {EVENTS}"
        ).fetchone()
        offsets = conn.execute(
            f"SELECT application_name, notification_id FROM {TRACKING} ORDER BY 1"
        ).fetchall()
    return (events, tuple(offsets))


ATTACKS = [
    # (SQL as the ledger role, what PostgreSQL answers)
    pytest.param(
        f"UPDATE {EVENTS} SET state = state || '\\x00'::bytea",
        f"permission denied for table {EVENTS}",
        id="edit an event's payload",
    ),
    pytest.param(
        f"UPDATE {EVENTS} SET originator_version = originator_version + 100",
        f"permission denied for table {EVENTS}",
        id="reorder events",
    ),
    pytest.param(
        f"DELETE FROM {EVENTS} WHERE notification_id = (SELECT max(notification_id) FROM {EVENTS})",
        f"permission denied for table {EVENTS}",
        id="delete the last event",
    ),
    pytest.param(
        f"INSERT INTO {EVENTS} SELECT originator_id, originator_version, topic, '\\x00'::bytea "
        f"FROM {EVENTS} ON CONFLICT (originator_id, originator_version) "
        "DO UPDATE SET state = excluded.state",
        f"permission denied for table {EVENTS}",
        id="upsert over an event",
    ),
    pytest.param(
        f"TRUNCATE {EVENTS}",
        f"the ledger is append-only: TRUNCATE on public.{EVENTS} refused",
        id="truncate the events (the lock privilege; the trigger refuses)",
    ),
    pytest.param(
        f"TRUNCATE {TRACKING}",
        f"the ledger is append-only: TRUNCATE on public.{TRACKING} refused",
        id="truncate the offsets",
    ),
    pytest.param(
        f"DROP TABLE {EVENTS}",
        f"must be owner of table {EVENTS}",
        id="drop the events",
    ),
    pytest.param(
        f"ALTER TABLE {EVENTS} ADD COLUMN note text",
        f"must be owner of table {EVENTS}",
        id="alter the events",
    ),
    pytest.param(
        f"ALTER TABLE {EVENTS} RENAME TO old_events",
        f"must be owner of table {EVENTS}",
        id="rename the events away",
    ),
    pytest.param(
        f"DROP TRIGGER ledger_no_truncate ON {EVENTS}",
        f"must be owner of (table|relation) {EVENTS}",
        id="drop the truncate trigger",
    ),
    pytest.param(
        f"ALTER TABLE {EVENTS} DISABLE TRIGGER ALL",
        f"must be owner of table {EVENTS}",
        id="disable the triggers",
    ),
    pytest.param(
        "CREATE OR REPLACE FUNCTION public.ledger_refuse_rewrite() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
        "permission denied for schema public",
        id="replace the trigger function",
    ),
    pytest.param(
        "SET session_replication_role = replica",
        'permission denied to set parameter "session_replication_role"',
        id="switch ordinary triggers off",
    ),
    pytest.param(
        f"UPDATE {TRACKING} SET notification_id = 0 WHERE application_name = '{TOPIC}:0'",
        f"append-only: an offset in public.{TRACKING} only moves forward",
        id="rewind the Kafka offset",
    ),
    pytest.param(
        f"UPDATE {TRACKING} SET application_name = 'elsewhere:0'",
        f"permission denied for table {TRACKING}",
        id="rename an offset",
    ),
    pytest.param(
        f"DELETE FROM {TRACKING}",
        f"permission denied for table {TRACKING}",
        id="delete the offsets",
    ),
    pytest.param(
        f"SELECT setval('{EVENTS}_notification_id_seq', 1)",
        f"permission denied for sequence {EVENTS}_notification_id_seq",
        id="reset the position sequence",
    ),
    pytest.param(
        "CREATE TABLE public.shadow (x int)",
        "permission denied for schema public",
        id="create a table in the schema",
    ),
    pytest.param(
        "SET ROLE ledger_owner",
        'permission denied to set role "ledger_owner"',
        id="become the owner",
    ),
    pytest.param(
        "CREATE DATABASE elsewhere",
        "permission denied to create database",
        id="create a database",
    ),
]


@pytest.mark.parametrize(("statement", "answer"), ATTACKS)
def test_the_ledger_role_cannot_rewrite_the_store(
    store: Store, statement: str, answer: str
) -> None:
    """Each rewrite attack run as the ledger's own role fails, and the store is unchanged."""
    import psycopg

    before = fingerprint(store.ledger_url)
    with (
        psycopg.connect(store.ledger_url, autocommit=True, connect_timeout=10) as conn,
        pytest.raises(psycopg.Error, match=answer),
    ):
        conn.execute(statement)
    assert fingerprint(store.ledger_url) == before


OWNER_ATTACKS = [
    pytest.param(f"UPDATE {EVENTS} SET state = state", "UPDATE", id="update"),
    pytest.param(f"DELETE FROM {EVENTS}", "DELETE", id="delete"),
    pytest.param(f"TRUNCATE {EVENTS}", "TRUNCATE", id="truncate"),
]


@pytest.mark.parametrize(("statement", "operation"), OWNER_ATTACKS)
def test_the_triggers_refuse_rewrites_even_to_the_owner(
    store: Store, statement: str, operation: str
) -> None:
    """The owner holds every privilege, yet the triggers refuse its UPDATE/DELETE/TRUNCATE too:
    rewriting needs a deliberate DROP TRIGGER first (logged: log_statement = ddl)."""
    import psycopg

    before = fingerprint(store.ledger_url)
    with (
        psycopg.connect(store.owner_url, autocommit=True, connect_timeout=10) as conn,
        pytest.raises(psycopg.Error, match=f"append-only: {operation} on public.{EVENTS}"),
    ):
        conn.execute(statement)
    assert fingerprint(store.ledger_url) == before


def test_the_ledger_records_and_reads_through_its_role(postgres_url: str) -> None:
    """Through the append-only role the ledger opens the trial, submits a batch, records a
    tracked batch and its offset, refuses a stale offset (IntegrityError, nothing stored) and
    reads everything back."""
    with LedgerService(postgres_url, clock=FixedClock()) as service:
        service.ensure_trial()
        assert service.submit_many(submissions(1, 3)).accepted == 3
        report = service.submit_tracked(deliveries(submissions(4, 2), 0))
        assert len(report.results) == 2
        assert service.upstream_position(TOPIC, 0) == 1
        before = fingerprint(postgres_url)
        with pytest.raises(IntegrityError):
            service.submit_tracked(deliveries(submissions(6, 1), 1))
        assert fingerprint(postgres_url) == before
        assert service.upstream_position(TOPIC, 0) == 1
        recorded = [entry.to_json() for entry in service.entries(TRIAL_ID)]
    with LedgerService(postgres_url) as reopened:
        assert [entry.to_json() for entry in reopened.entries(TRIAL_ID)] == recorded
    assert len(recorded) >= 4  # trial.opened and the three enrolments at least


def test_the_grants_are_exactly_the_append_only_ones(store: Store) -> None:
    """The ledger role holds SELECT, INSERT and the lock privilege (TRUNCATE before PostgreSQL 17,
    MAINTAIN from 17), UPDATE of a tracking offset only, sequence USAGE; it owns nothing and has
    no role attributes; the owner owns every table."""
    import psycopg

    with psycopg.connect(store.ledger_url, autocommit=True, connect_timeout=10) as conn:
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        lock = "MAINTAIN" if version >= 170000 else "TRUNCATE"
        tables = dict(
            conn.execute(
                "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
                "FROM information_schema.role_table_grants "
                "WHERE grantee = current_user GROUP BY table_name"
            ).fetchall()
        )
        columns = conn.execute(
            "SELECT table_name, column_name, privilege_type "
            "FROM information_schema.column_privileges "
            "WHERE grantee = current_user AND privilege_type NOT IN ('SELECT', 'INSERT')"
        ).fetchall()
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        attributes = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, "
            "pg_has_role(current_user, 'ledger_owner', 'MEMBER') "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        sequences = conn.execute(
            f"SELECT has_sequence_privilege('{EVENTS}_notification_id_seq', 'USAGE'), "
            f"has_sequence_privilege('{EVENTS}_notification_id_seq', 'UPDATE')"
        ).fetchone()
    expected = ",".join(sorted(["INSERT", "SELECT", lock]))
    assert tables == {EVENTS: expected, TRACKING: expected}
    assert columns == [(TRACKING, "notification_id", "UPDATE")]
    assert owners == [("ledger_owner",)]
    assert attributes == (False, False, False, False, False)
    assert sequences == (True, False)
