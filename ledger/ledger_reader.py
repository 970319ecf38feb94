"""LedgerReader: the service a read command opens; `LedgerService` is a LedgerReader that records.

It opens the store and offers every read (`TrialReading`, `AuditReading`). Kept apart from
`ledger.application` so that opening a store to read imports nothing of the recording side:
the intake rules, the rejection and audit log aggregates (each class builds its event classes as
it is imported), the wire models, the retry policy. `ledger cohorts`, `history`, `export`,
`report` and the audit commands open a LedgerReader read-only (`cli_plumbing.reader`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Self
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import PersistenceError

from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.audit_reading import AuditReading
from ledger.reading import StoreReader
from ledger.store import (
    DEFAULT_STORE,
    LedgerStore,
    ensure_postgres_schema,
    postgres_connection_failure,
    redacted,
    store_environment,
)
from ledger.trial_reading import TrialReading

if TYPE_CHECKING:
    from ledger.aggregates.audit_log import AuditLog
    from ledger.aggregates.trial import Trial


class LedgerReader(TrialReading, AuditReading):
    """One store, opened read-only (a SQLite file must exist; nothing is created or written),
    or, as the base of `LedgerService`, with `read_only=False`."""

    def __init__(self, store: str = DEFAULT_STORE, *, read_only: bool = True) -> None:
        env = store_environment(store, read_only=read_only)
        postgres = env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
        app: LedgerStore | None = None
        try:
            app = LedgerStore(env=env)
            if postgres:
                ensure_postgres_schema(app.recorder, may_create=not read_only)
        except BaseException as error:
            if app is not None:  # else its pool is closed by the garbage collector, from a
                with contextlib.suppress(Exception):  # thread of its own, which then fails
                    app.close()
            if not isinstance(error, PersistenceError):
                raise
            cause = (postgres and postgres_connection_failure(env)) or error.__cause__ or error
            raise OSError(f"cannot open the store {redacted(store)}: {cause}") from error
        self._app = app
        self._trials: dict[str, Trial] = {}
        self._opened_trial_ids: set[str] = set()
        self._opened_scanned_to = 0  # notification id up to which trial.opened was looked for
        self._audit_logs: dict[UUID, AuditLog] = {}
        self._reader = StoreReader(self._app)

    def close(self) -> None:
        self._app.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def is_empty(self) -> bool:
        return not self._app.recorder.max_notification_id()

    def find_trial(self, trial_id: str) -> Trial | None:
        cached = self._trials.get(trial_id)
        if cached is not None:
            return cached
        from ledger.aggregates.trial import project_trial  # replaying needs the aggregate

        try:
            trial: Trial = self._app.repository.get(
                trial_aggregate_id(trial_id), projector_func=project_trial
            )
        except AggregateNotFoundError:
            return None
        self._trials[trial_id] = trial
        return trial
