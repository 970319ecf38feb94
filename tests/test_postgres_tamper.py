"""Tampering with a PostgreSQL store (contract §6): the ledger role cannot rewrite history at all
(tests/test_postgres_append_only.py); an owner who switches the append-only trigger off and edits,
deletes or swaps rows is still caught by `verify`, at the first position affected."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.audit.inspection import verify_source
from ledger.ledger_reader import LedgerReader
from tests.builders import TRIAL_ID
from tests.postgres_fixtures import PostgresHandle, create_database, database_name, drop_database
from tests.test_audit import build_store

pytestmark = pytest.mark.postgres

EVENTS = "trialledger_events"
TRIAL = trial_aggregate_id(TRIAL_ID)


@pytest.fixture(scope="module")
def filled(postgres_server: PostgresHandle) -> Iterator[tuple[str, int]]:
    """A database filled through the ledger role; its name and the trial's last position."""
    if postgres_server.template is None:
        pytest.skip("needs the started server's owner role")
    name = database_name("tamper_source")
    url = create_database(postgres_server, name)
    build_store(None, url=url)
    with LedgerReader(url) as service:
        size = len(list(service.entries(TRIAL_ID)))
    yield name, size
    drop_database(postgres_server, name)


def _copy(handle: PostgresHandle, source: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(handle.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(source)))


def _state(conn: Any, version: int) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT state FROM {EVENTS} WHERE originator_id=%s AND originator_version=%s",
        (TRIAL, version),
    ).fetchone()
    return dict(json.loads(bytes(row[0])))


def _put(conn: Any, version: int, state: dict[str, Any]) -> None:
    conn.execute(
        f"UPDATE {EVENTS} SET state=%s WHERE originator_id=%s AND originator_version=%s",
        (json.dumps(state).encode(), TRIAL, version),
    )


def _edit(conn: Any, pos: int) -> None:
    state = _state(conn, pos)
    state["entered_by"] = f"{state['entered_by']}x"
    _put(conn, pos, state)


def _retime(conn: Any, pos: int) -> None:
    state = _state(conn, pos)
    stamp = state["timestamp"]["_data_"]
    state["timestamp"]["_data_"] = f"{int(stamp[:4]) - 1}{stamp[4:]}"
    _put(conn, pos, state)


def _delete(conn: Any, pos: int) -> None:
    conn.execute(f"DELETE FROM {EVENTS} WHERE originator_id=%s AND originator_version=%s",
                 (TRIAL, pos))


def _swap(conn: Any, pos: int) -> None:
    first, second = _state(conn, pos), _state(conn, pos + 1)
    _put(conn, pos, second)
    _put(conn, pos + 1, first)


TAMPERINGS: dict[str, Callable[[Any, int], None]] = {
    "edit": _edit, "retime": _retime, "delete": _delete, "swap": _swap,
}


@pytest.mark.parametrize("kind", list(TAMPERINGS))
def test_an_owner_tampering_with_rows_is_caught(
    kind: str, filled: tuple[str, int], postgres_server: PostgresHandle
) -> None:
    """8 random tamperings of each kind by the owner, trigger switched off: each found by verify
    at the position it touched."""
    import psycopg

    source, size = filled
    rng = random.Random(f"pg-{kind}")
    for attempt in range(8):
        name = database_name(f"tamper_{kind}_{attempt}")
        _copy(postgres_server, source, name)
        pos = rng.randint(2, size - 2)
        try:
            with psycopg.connect(postgres_server.admin_url(name)) as owner:
                owner.execute(f"ALTER TABLE {EVENTS} DISABLE TRIGGER ledger_append_only")
                TAMPERINGS[kind](owner, pos)
            with LedgerReader(postgres_server.database_url(name)) as service:
                report = verify_source(service.audit_source(TRIAL_ID)).to_json_dict()
        finally:
            drop_database(postgres_server, name)
        assert not report["intact"], (kind, pos)
        first = min(p["position"] for p in report["problems"] if p["position"] is not None)
        assert first == pos, (kind, pos, report["problems"][:3])


def test_an_untouched_postgresql_store_verifies(filled: tuple[str, int],
                                                postgres_server: PostgresHandle) -> None:
    """No false alarm: the store as the ledger wrote it is intact."""
    with LedgerReader(postgres_server.database_url(filled[0])) as service:
        assert verify_source(service.audit_source(TRIAL_ID)).intact
