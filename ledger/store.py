"""Where the ledger is stored: `--store` (a SQLite path or a postgresql:// URL) as the settings of
the `eventsourcing` application that owns the events, and opening that application.

Store settings live here once; `LedgerService` (recording) and `reading.StoreReader` (reading)
both work on the `LedgerStore` opened from them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlparse
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    JSONTranscoder,
    ProcessRecorder,
    Transcoding,
)

DEFAULT_STORE = "ledger.db"


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class LedgerStore(Application[UUID]):
    """The eventsourcing application: a process recorder, so Kafka offsets commit with events."""

    name = "TrialLedger"

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())


class OtherWriters:
    """Which aggregates other writers of a shared store changed since this process last asked.

    Several `ledger ingest` processes share one PostgreSQL store (scale-out): each caches the
    aggregates it records into, and another process may move one of them on (a trial whose
    partition it took over, the store's one rejection log). Writing from a stale copy only
    conflicts and is retried, but reading from one would publish too little. So the notification
    log is followed: what this process wrote itself is skipped, the rest names the aggregates
    whose cached copies are stale. Notification ids are committed in order (SQLite has one
    writer; eventsourcing's PostgreSQL recorder locks the table), so nothing below the maximum
    read can appear later.
    """

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self._recorder = recorder
        self._seen = recorder.max_notification_id() or 0
        self._own: list[tuple[int, int]] = []  # id ranges this process wrote beyond _seen

    def wrote(self, notification_ids: Sequence[int]) -> None:
        """Note the notification ids of a batch this process committed."""
        if notification_ids:
            self._own.append((min(notification_ids), max(notification_ids)))

    def changed_since_last_asked(self) -> set[UUID]:
        """The ids of the aggregates others wrote since the last call (empty: none)."""
        last = self._recorder.max_notification_id() or 0
        changed: set[UUID] = set()
        start = self._seen + 1
        for low, high in [*sorted(self._own), (last + 1, last + 1)]:
            stop = min(low - 1, last)
            if stop >= start:  # a stretch written by someone else
                notifications = self._recorder.select_notifications(
                    start=start, limit=stop - start + 1, stop=stop
                )
                changed.update(UUID(str(n.originator_id)) for n in notifications)
            start = max(start, high + 1)
            if start > last:
                break
        self._own = [(low, high) for low, high in self._own if high > last]
        self._seen = max(self._seen, last)
        return changed


def store_environment(store: str, *, read_only: bool = False) -> dict[str, str]:
    """`--store` (a SQLite path or a postgresql:// URL) as eventsourcing's settings.

    `read_only`: a SQLite file must exist and is opened read-only (an auditor's copy; nothing is
    ever created by a read). A URL without a password takes it from PGPASSWORD or ~/.pgpass,
    as libpq would, so no password needs to be on a command line.
    """
    if store.startswith(("postgresql://", "postgres://")):
        url = urlparse(store)
        options = dict(parse_qsl(url.query))
        # Silently ignoring, say, sslmode=verify-full would connect without TLS.
        unsupported = sorted(options.keys() - {"connect_timeout"})
        if unsupported:
            raise ValueError(
                f"store URL parameter(s) {', '.join(unsupported)} not supported here; set libpq's "
                "environment instead (PGSSLMODE, PGSSLROOTCERT, ...)"
            )
        if not url.path.strip("/"):
            raise ValueError(
                f"{redacted(store)!r} names no database (postgresql://user@host:port/db)"
            )
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            # The append-only role may not create tables: they are made when allowed (below).
            "CREATE_TABLE": "no",
            "POSTGRES_DBNAME": url.path.strip("/"),
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": (
                unquote(url.password)
                if url.password is not None
                else _password_from_environment(
                    url.hostname or "127.0.0.1",
                    url.port or 5432,
                    url.path.strip("/"),
                    unquote(url.username or "postgres"),
                )
            ),
            # eventsourcing's default is 30 s, then a pool error that hides the real cause. (It
            # bounds waiting for a pooled connection too, which a single-threaded service
            # never does for long.)
            "POSTGRES_CONNECT_TIMEOUT": options.get("connect_timeout", "5"),
        }
    path = Path(store)
    if path.is_dir():
        raise ValueError(f"store {store!r} is a directory; give a SQLite file path")
    if not path.parent.exists():
        raise ValueError(f"store {store!r}: folder {path.parent} does not exist")
    if read_only:
        if not path.is_file():
            raise LookupError(
                f"no store at {store} (give --store or LEDGER_STORE; a read creates nothing)"
            )
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": read_only_uri(path)}
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def read_only_uri(path: Path) -> str:
    """SQLite's URI of a file opened read-only: mode=ro opens it without ever writing to it."""
    return f"file:{quote(str(path.resolve()))}?mode=ro"


class NotALedgerStoreError(ValueError):
    """The store names a database or file that holds no ledger (bad input, exit 2)."""


def ensure_postgres_schema(recorder: object, *, may_create: bool) -> None:
    """Check that a PostgreSQL store holds the ledger's tables. A writer creates them when its
    role may create in their schema (the owner; the append-only role of deploy/postgres.py may
    not, and finds them made); a read creates nothing, so a database without them is not a
    ledger store."""
    from eventsourcing.postgres import PostgresProcessRecorder

    assert isinstance(recorder, PostgresProcessRecorder)
    store = recorder.datastore
    with store.get_connection() as conn:
        row = conn.execute(
            "SELECT has_schema_privilege(%s, 'CREATE') AS allowed,"
            " to_regclass(%s) IS NOT NULL AS present",
            (store.schema, f"{store.schema}.{recorder.events_table_name}"),
        ).fetchone()
        user = conn.info.user
        database = conn.info.dbname
    if may_create and row is not None and row["allowed"]:
        recorder.create_table()  # made if missing
    elif row is None or not row["present"]:
        raise NotALedgerStoreError(
            f"postgresql database {database} has no ledger tables and {user} may not create "
            "them: create them as the owner (python3 -m deploy.postgres schema DIR)"
            if may_create else
            f"postgresql database {database} is not a ledger store: it has no ledger tables "
            "(a read creates nothing)"
        )


def postgres_connection_failure(env: dict[str, str]) -> str | None:
    """Why a PostgreSQL store cannot be connected to, as the server or the network says it
    (no such database, a wrong password, nothing listening): eventsourcing's pool only says it
    got no connection in time. None: a connection can be made now."""
    import psycopg

    try:
        psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]), user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"], connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
        ).close()
    except psycopg.Error as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return lines[-1] if lines else type(error).__name__
    return None


def _password_from_environment(host: str, port: int, database: str, user: str) -> str:
    """PGPASSWORD, else the first matching line of PGPASSFILE / ~/.pgpass (libpq's format:
    host:port:database:user:password, `*` matches anything, `\\:` is a literal colon)."""
    if "PGPASSWORD" in os.environ:
        return os.environ["PGPASSWORD"]
    passfile = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        lines = passfile.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    wanted = (host, str(port), database, user)
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.replace("\\:", ":").replace("\\\\", "\\")
                  for f in re.split(r"(?<!\\):", line, maxsplit=4)]
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields, wanted, strict=False)):
            return fields[4]
    return ""


def redacted(store: str) -> str:
    """`store` fit to print: a URL's password replaced by ***."""
    url = urlparse(store)
    if url.password is None:
        return store
    return url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@", 1)).geturl()
