"""LedgerService: the one application service the command line and the Kafka consumer both call.

It owns the event store (the `eventsourcing` SQLite store by default, PostgreSQL when a
`postgresql://` URL is given), turns wire messages into domain submissions, records them through
the Trial aggregate, and reads the history back as contract-shaped `LedgerEntry` records.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlparse
from uuid import UUID

import stamina
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    Tracking,
    Transcoding,
)

from ledger.aggregates.audit_log import LEDGER_LOG, REJECTIONS_LOG, AuditLog, audit_log_id
from ledger.aggregates.escalation import Variant
from ledger.aggregates.facts import AMENDMENT_TYPES, RECORD_CORRECTED, Submission
from ledger.aggregates.intake import RejectionLog, rejection_log_id
from ledger.aggregates.protocol import ProtocolDefinition
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.trial import Outcome, Trial, trial_aggregate_id
from ledger.audit.checkpoints import SIGNING_KEY_ENV, Signer, load_signing_key
from ledger.audit.inspection import AuditSource
from ledger.audit.sealing import seal_batch
from ledger.entries import LedgerEntry, format_timestamp, known_as_of
from ledger.schemas.submissions import (
    InvalidSubmissionError,
    SubmissionMessage,
    parse_submission,
    to_domain,
    validate_corrected_data,
)

DEFAULT_STORE = "ledger.db"
LEDGER_SOURCE = "trial-ledger"


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class _LedgerStore(Application[UUID]):
    """The eventsourcing application: a process recorder, so Kafka offsets commit with events."""

    name = "TrialLedger"

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())


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
            raise ValueError(f"{store!r} names no database (postgresql://user:pw@host:port/db)")
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
        # SQLite's URI form: mode=ro opens the file without ever writing to it.
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": f"file:{quote(str(path.resolve()))}?mode=ro",
        }
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def _create_postgres_schema_if_allowed(recorder: object) -> None:
    """Create the tables only as a role that may create in their schema (the owner); the
    append-only role of deploy/postgres.py may not, and finds them made."""
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
    if row is not None and row["allowed"]:
        recorder.create_table()
    elif row is None or not row["present"]:
        raise OSError(
            f"the store has no ledger tables and {user} may not create them: create them as "
            "the owner (python3 -m deploy.postgres schema DIR)"
        )


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


def bundled_protocol() -> ProtocolDefinition:
    text = resources.files("ledger").joinpath("protocols/NCT05406206.json").read_text()
    return ProtocolDefinition.from_mapping(json.loads(text))


def load_protocol(path: Path) -> ProtocolDefinition:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read protocol {path}: {error}") from None
    return ProtocolDefinition.from_mapping(raw)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SubmissionResult:
    """What happened to one submission: recorded, a duplicate of one recorded, or rejected."""

    event_id: str | None
    outcome: Outcome | None
    reason_code: ReasonCode | None = None
    message: str | None = None
    positions: tuple[int, ...] = ()

    @property
    def rejected(self) -> bool:
        return self.reason_code is not None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message from a tracked upstream (a Kafka partition): its bytes and where it came from."""

    raw: bytes
    topic: str
    partition: int
    offset: int
    site: str | None = None
    """The sender as the broker authenticated it (a site's own topic), or None for the shared
    topic; a submission from a site must carry that site as its `source`."""


@dataclass(slots=True)
class BatchReport:
    results: list[SubmissionResult] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.RECORDED)

    @property
    def duplicates(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.DUPLICATE)

    @property
    def rejected(self) -> list[SubmissionResult]:
        return [r for r in self.results if r.rejected]


class LedgerService:
    """Submit, read and rebuild: everything outside the domain goes through here."""

    def __init__(
        self,
        store: str = DEFAULT_STORE,
        clock: Callable[[], datetime] = utc_now,
        *,
        signer: Signer | None = None,
        read_only: bool = False,
    ) -> None:
        env = store_environment(store, read_only=read_only)
        try:
            self._app = _LedgerStore(env=env)
            if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
                _create_postgres_schema_if_allowed(self._app.recorder)
        except PersistenceError as error:
            cause = error.__cause__ or error
            raise OSError(f"cannot open the store {redacted(store)}: {cause}") from error
        self._clock = clock
        self._trials: dict[str, Trial] = {}
        self._opened_trial_ids: set[str] = set()
        self._opened_scanned_to = 0  # notification id up to which trial.opened was looked for
        self._rejection_log: RejectionLog | None = None
        self._signer = signer
        self._audit_logs: dict[UUID, AuditLog] = {}

    def close(self) -> None:
        self._app.close()

    def __enter__(self) -> LedgerService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- opening ------------------------------------------------------------------------------

    def open_trial(
        self,
        protocol: ProtocolDefinition,
        *,
        opened_by: str = "ledger-cli",
        reason: str | None = None,
    ) -> LedgerEntry:
        """Record `trial.opened` with the protocol in force; refuses a second opening."""
        if self.find_trial(protocol.trial_id) is not None:
            raise ValueError(f"trial {protocol.trial_id} is already open in this store")
        trial = Trial.open(
            protocol,
            source=LEDGER_SOURCE,
            entered_by=opened_by,
            recorded_at=self._clock(),
            reason=reason,
        )
        self._commit({protocol.trial_id: trial})
        self._trials[protocol.trial_id] = trial
        return next(self.entries(protocol.trial_id))

    def ensure_trial(self, variant: Variant | None = None) -> str:
        """Open the bundled protocol on an empty store (as `submit` and `ingest` do)."""
        protocol = bundled_protocol()
        if variant is not None:
            protocol = protocol.with_variant(variant)
        if self.find_trial(protocol.trial_id) is None and self.is_empty():
            self.open_trial(protocol, reason="opened implicitly by the first submission")
        return protocol.trial_id

    def is_empty(self) -> bool:
        return not self._app.recorder.max_notification_id()

    def find_trial(self, trial_id: str) -> Trial | None:
        cached = self._trials.get(trial_id)
        if cached is not None:
            return cached
        try:
            trial: Trial = self._app.repository.get(trial_aggregate_id(trial_id))
        except AggregateNotFoundError:
            return None
        self._trials[trial_id] = trial
        return trial

    # --- recording ----------------------------------------------------------------------------

    def submit(self, raw: bytes | str | SubmissionMessage) -> SubmissionResult:
        return self.submit_many([raw]).results[0]

    def submit_many(
        self,
        items: Sequence[bytes | str | SubmissionMessage],
        *,
        origin: str | None = None,
        line_numbers: Sequence[int] | None = None,
    ) -> BatchReport:
        """Record in one transaction; rejections are reported and leave the trials unchanged.

        With `origin` (e.g. `file:submissions.jsonl`) each rejection is also kept in the rejection
        log, with its line number as its offset, like a rejected Kafka delivery.
        """
        numbers = line_numbers if line_numbers is not None else range(1, len(items) + 1)
        # Another writer on the same store (a second `ledger submit`) moves the trial on under
        # us: the commit conflicts, so decide the batch again on the fresh trial.
        for attempt in stamina.retry_context(
            on=(IntegrityError, OperationalError), attempts=8, wait_initial=0.05, wait_max=1.0
        ):
            with attempt:
                return self._submit_once(items, origin, numbers)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    def _submit_once(
        self,
        items: Sequence[bytes | str | SubmissionMessage],
        origin: str | None,
        numbers: Sequence[int],
    ) -> BatchReport:
        report = BatchReport()
        touched: dict[str, Trial] = {}
        log = self._load_rejection_log() if origin is not None else None
        try:
            for item, number in zip(items, numbers, strict=True):
                result = self._record_one(item, touched)
                report.results.append(result)
                if log is not None and origin is not None and result.rejected:
                    raw = item if isinstance(item, bytes) else str(item).encode("utf-8", "replace")
                    self._log_rejection(log, result, raw, origin, None, number)
            self._commit(touched, log)
        except BaseException:
            self._forget(touched)
            raise
        return report

    def submit_tracked(self, deliveries: Sequence[Delivery]) -> BatchReport:
        """Record a batch from one upstream partition, with its offset, atomically.

        The offset is stored in the same transaction as the events and rejections, so after a crash
        the consumer resumes exactly after the last delivery whose effects were committed.
        """
        if not deliveries:
            return BatchReport()
        upstreams = {(d.topic, d.partition) for d in deliveries}
        if len(upstreams) != 1:
            raise ValueError("a tracked batch comes from one topic partition")
        last = max(d.offset for d in deliveries)
        report = BatchReport()
        touched: dict[str, Trial] = {}
        log = self._load_rejection_log()
        try:
            for delivery in deliveries:
                result = self._record_one(delivery.raw, touched, site=delivery.site)
                report.results.append(result)
                if result.rejected:
                    self._log_rejection(
                        log, result, delivery.raw, delivery.topic, delivery.partition,
                        delivery.offset,
                    )
            self._commit(touched, log, Tracking(_upstream_name(deliveries[0]), last))
        except BaseException:
            self._forget(touched)
            raise
        return report

    def _log_rejection(
        self,
        log: RejectionLog,
        result: SubmissionResult,
        raw: bytes,
        topic: str,
        partition: int | None,
        offset: int,
    ) -> None:
        assert result.reason_code is not None and result.message is not None
        log.reject(
            event_id=result.event_id,
            reason_code=result.reason_code.value,
            message=result.message,
            **_original_text(raw),
            topic=topic,
            partition=partition,
            offset=offset,
            rejected_at=self._recorded_at(log.modified_on),
        )

    def _commit(
        self,
        trials: Mapping[str, Trial],
        rejection_log: RejectionLog | None = None,
        tracking: Tracking | None = None,
    ) -> None:
        """Store the batch, its leaf hashes and signed checkpoints, and the upstream offset in
        one transaction: a batch is never stored without its seal, nor sealed without its events."""
        collected: list[Any] = []
        for trial_id, trial in trials.items():
            events = trial.collect_events()
            if not events:
                continue
            entries = [_entry(cast(Trial.Event, event), trial_id) for event in events]
            audit = self._audit_log(LEDGER_LOG, trial_id)
            self._seal_earlier_entries(audit, trial_id, before=entries[0].position)
            seal_batch(
                audit,
                [entry.to_json_dict() for entry in entries],
                recorded_at=format_timestamp(entries[-1].recorded_at),
                signer=self._signer,
            )
            collected += [*events, audit]
        if rejection_log is None and collected:
            rejection_log = self._load_rejection_log()  # to seal what an old store holds
        if rejection_log is not None:
            events = rejection_log.collect_events()
            rejected = [e for e in events if isinstance(e, RejectionLog.Rejected)]
            # The sequence of the first new rejection (or one past the stored ones).
            first_new = rejected[0].originator_version - 1 if rejected else rejection_log.version
            audit = self._audit_log(REJECTIONS_LOG, self._rejections_trial_id(trials))
            if audit.size < first_new - 1:
                self._seal_earlier_rejections(audit, before=first_new)
                collected.append(audit)
            if rejected:
                messages = [
                    _rejection_message(e, sequence=e.originator_version - 1) for e in rejected
                ]
                seal_batch(
                    audit,
                    messages,
                    recorded_at=str(messages[-1]["rejected_at"]),
                    signer=self._signer,
                )
                collected.append(audit)
            collected += events
        if not collected and tracking is None:
            return
        processing = ProcessingEvent[UUID](tracking=tracking)
        processing.collect_events(*collected)
        try:
            self._app._record(processing)
        except BaseException:
            self._audit_logs.clear()
            self._rejection_log = None
            raise

    def _audit_log(self, log: str, trial_id: str | None) -> AuditLog:
        log_id = audit_log_id(log, trial_id)
        cached = self._audit_logs.get(log_id)
        if cached is None:
            try:
                cached = cast(AuditLog, self._app.repository.get(log_id))
            except AggregateNotFoundError:
                cached = AuditLog.start(log, trial_id)
            self._audit_logs[log_id] = cached
        return cached

    def _seal_earlier_entries(self, audit: AuditLog, trial_id: str, *, before: int) -> None:
        """A store written before the ledger hashed its log: hash what it holds, marked so."""
        if audit.size >= before - 1:
            return
        earlier = [
            e.to_json_dict()
            for e in self._stored_entries(trial_id, after=audit.size)
            if e.position < before
        ]
        seal_batch(
            audit,
            earlier,
            recorded_at=str(earlier[-1]["recorded_at"]),
            signer=self._signer,
            hashed_later=True,
        )

    def _seal_earlier_rejections(self, audit: AuditLog, *, before: int) -> None:
        if audit.size >= before - 1:
            return
        earlier = [m for m in self.rejections(after=audit.size) if int(m["sequence"]) < before]
        if not earlier:
            return
        seal_batch(
            audit,
            earlier,
            recorded_at=str(earlier[-1]["rejected_at"]),
            signer=self._signer,
            hashed_later=True,
        )

    def _rejections_trial_id(self, trials: Mapping[str, Trial]) -> str | None:
        """The rejection log is the store's; its checkpoints name the store's first trial."""
        trial_ids = self.trial_ids() or sorted(trials)
        return trial_ids[0] if trial_ids else None

    def upstream_position(self, topic: str, partition: int) -> int | None:
        """The last offset of `topic`/`partition` whose effects are in the store."""
        recorder = self._app.recorder
        assert isinstance(recorder, ProcessRecorder)
        return recorder.max_tracking_id(f"{topic}:{partition}")

    def _record_one(
        self,
        item: bytes | str | SubmissionMessage,
        touched: dict[str, Trial],
        *,
        site: str | None = None,
    ) -> SubmissionResult:
        event_id: str | None = None
        try:
            message = (
                item
                if isinstance(item, SubmissionMessage)
                else parse_submission(item, recorded_on=self._clock().date())
            )
            event_id = str(message.event_id)
            _check_sender(message.source, site)
            trial = self.find_trial(message.trial_id)
            if trial is None:
                raise SubmissionRejectedError(
                    ReasonCode.UNKNOWN_TRIAL, f"no trial {message.trial_id} in this ledger"
                )
            submission = self._checked_correction(trial, to_domain(message))
            version_before = trial.version
            outcome = trial.record(submission, self._recorded_at(trial.modified_on))
        except InvalidSubmissionError as error:
            return SubmissionResult(
                event_id=error.event_id or event_id,
                outcome=None,
                reason_code=error.reason_code,
                message=error.message,
            )
        except SubmissionRejectedError as error:
            return SubmissionResult(
                event_id=event_id,
                outcome=None,
                reason_code=error.reason_code,
                message=error.message,
            )
        if outcome is Outcome.RECORDED:
            touched[trial.trial_id] = trial
        return SubmissionResult(
            event_id=event_id,
            outcome=outcome,
            positions=tuple(range(version_before + 1, trial.version + 1)),
        )

    def _checked_correction(self, trial: Trial, submission: Submission) -> Submission:
        """Only the sender of a record amends it, and a correction's data must be valid data of
        the corrected event's type."""
        if submission.type not in AMENDMENT_TYPES:
            return submission
        target_id = str(submission.data["target_event_id"])
        _check_same_sender(trial, target_id, submission.source)
        if submission.type != RECORD_CORRECTED:
            return submission
        target_type = trial.target_type(target_id)
        if target_type is None or target_type.startswith("record."):
            return submission  # the aggregate refuses it with the precise reason
        corrected = validate_corrected_data(target_type, dict(submission.data["data"]))
        data = {**submission.data, "data": corrected}
        return replace(submission, data=data)

    def _recorded_at(self, last: datetime | None) -> datetime:
        """Transaction time from the ledger's clock, never earlier than the previous record."""
        now = self._clock()
        return max(now, last) if last is not None else now

    def _forget(self, touched: Mapping[str, Trial]) -> None:
        for trial_id in touched:
            self._trials.pop(trial_id, None)
        self._audit_logs.clear()
        self._rejection_log = None

    def _load_rejection_log(self) -> RejectionLog:
        if self._rejection_log is None:
            try:
                self._rejection_log = self._app.repository.get(rejection_log_id())
            except AggregateNotFoundError:
                self._rejection_log = RejectionLog.start()
        return self._rejection_log

    # --- reading ------------------------------------------------------------------------------

    def trial_ids(self) -> list[str]:
        """The trials opened in the store, read incrementally: only notifications recorded since
        the last call are scanned (the outbox asks every round, and the store only grows).

        Reading up to the maximum notification id misses nothing later: ids are committed in
        order (SQLite has one writer; eventsourcing's PostgreSQL recorder locks the table).
        """
        recorder = self._app.recorder
        last = recorder.max_notification_id() or 0
        if last > self._opened_scanned_to:
            for notification in recorder.select_notifications(
                start=self._opened_scanned_to + 1, limit=1_000_000, stop=last,
                topics=[Trial.Opened.TOPIC],
            ):
                event = self._app.mapper.to_domain_event(notification)
                assert isinstance(event, Trial.Opened)
                self._opened_trial_ids.add(str(event.data["protocol"]["trial_id"]))
            self._opened_scanned_to = last
        return sorted(self._opened_trial_ids)

    def entries(
        self, trial_id: str, *, as_of: datetime | None = None, after: int = 0
    ) -> Iterator[LedgerEntry]:
        """The trial's recorded events in ledger order, as known at `as_of` (None: all)."""
        if self.find_trial(trial_id) is None:
            raise LookupError(f"no trial {trial_id} in this ledger")
        hashes = self._audit_log(LEDGER_LOG, trial_id).leaf_hashes
        for entry in known_as_of(self._stored_entries(trial_id, after=after), as_of):
            index = entry.position - 1
            yield replace(entry, leaf_hash=hashes[index]) if index < len(hashes) else entry

    def _stored_entries(self, trial_id: str, *, after: int = 0) -> Iterator[LedgerEntry]:
        events = self._app.events.get(trial_aggregate_id(trial_id), gt=after or None)
        return (_entry(cast(Trial.Event, event), trial_id) for event in events)

    def rejections(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """Recorded rejections of tracked deliveries, numbered from 1 without gaps."""
        # Version 1 is the log's creation, so rejection n is version n + 1.
        for event in self._app.events.get(rejection_log_id(), gt=after + 1):
            if isinstance(event, RejectionLog.Rejected):
                yield _rejection_message(event, sequence=event.originator_version - 1)

    def rejection_leaf_hashes(self) -> list[str]:
        return list(self._audit_log(REJECTIONS_LOG, None).leaf_hashes)

    def checkpoints(self, trial_id: str) -> list[dict[str, Any]]:
        """Every checkpoint of the trial's ledger log and of the rejection log, oldest first."""
        logs = (self._audit_log(LEDGER_LOG, trial_id), self._audit_log(REJECTIONS_LOG, None))
        found = [seal.checkpoint for log in logs for seal in log.seals]
        return sorted(found, key=lambda c: (str(c["recorded_at"]), str(c["log"]), int(c["size"])))

    def log_checkpoints(self, log: str, trial_id: str | None) -> list[dict[str, Any]]:
        """The checkpoints of one log in the order recorded (sizes only grow)."""
        return [seal.checkpoint for seal in self._audit_log(log, trial_id).seals]

    def latest_checkpoints(self, trial_id: str) -> dict[str, dict[str, Any] | None]:
        return {
            LEDGER_LOG: self._audit_log(LEDGER_LOG, trial_id).latest_checkpoint,
            REJECTIONS_LOG: self._audit_log(REJECTIONS_LOG, None).latest_checkpoint,
        }

    def public_keys(self, trial_id: str) -> dict[str, str]:
        """The public halves of the keys that signed the logs' checkpoints, by key id."""
        logs = (self._audit_log(LEDGER_LOG, trial_id), self._audit_log(REJECTIONS_LOG, None))
        return {key_id: pem for log in logs for key_id, pem in log.public_keys.items()}

    def audit_source(self, trial_id: str) -> AuditSource:
        """The store's logs as held, read row by row so that a tampered row that no longer
        decodes is reported at its position instead of stopping the read."""
        from ledger.audit.inspection import AuditSource, records_from_messages
        from ledger.audit.verify import LogRecord

        problems: list[tuple[str, str]] = []
        try:
            audit = self._audit_log(LEDGER_LOG, trial_id)
            rejection_audit = self._audit_log(REJECTIONS_LOG, None)
        except Exception as error:
            problems.append(("undecodable", f"the audit log cannot be read: {error}"))
            audit, rejection_audit = AuditLog.start(LEDGER_LOG, trial_id), AuditLog.start(
                REJECTIONS_LOG, None
            )
        records: list[LogRecord] = []
        for stored in self._app.recorder.select_events(trial_aggregate_id(trial_id)):
            position = stored.originator_version
            leaf = audit.leaf_hashes[position - 1] if position <= audit.size else None
            try:
                event = cast(Trial.Event, self._app.mapper.to_domain_event(stored))
                entry = _entry(event, trial_id).to_json_dict()
            except Exception as error:
                records.append(LogRecord(position, None, leaf, f"{type(error).__name__}: {error}"))
                continue
            records.append(LogRecord(position, entry, leaf))
        rejections: list[dict[str, Any]] = []
        try:
            for number, message in enumerate(self.rejections(), start=1):
                if number <= rejection_audit.size:
                    message["leaf_hash"] = rejection_audit.leaf_hashes[number - 1]
                rejections.append(message)
        except Exception as error:
            problems.append(("undecodable", f"the rejection log cannot be read: {error}"))
        checkpoints = [seal.checkpoint for log in (audit, rejection_audit) for seal in log.seals]
        keys = {**audit.public_keys, **rejection_audit.public_keys}
        return AuditSource(
            description=f"store {self.store_description}",
            trial_id=trial_id,
            ledger=records,
            rejections=records_from_messages(rejections, "sequence"),
            checkpoints=checkpoints,
            public_keys=keys,
            hashed_from={
                LEDGER_LOG: _hashed_from(audit, len(records)),
                REJECTIONS_LOG: _hashed_from(rejection_audit, len(rejections)),
            },
            problems=problems,
        )

    def hashed_later_through(self, trial_id: str) -> int:
        """The last position hashed when first sealed rather than when recorded (0: none)."""
        seals = self._audit_log(LEDGER_LOG, trial_id).seals
        return max((seal.size for seal in seals if seal.hashed_later), default=0)

    def trial_at(self, trial_id: str, as_of: datetime | None) -> Trial:
        """The aggregate as it stood at `as_of` (transaction time)."""
        aggregate_id = trial_aggregate_id(trial_id)
        if as_of is None:
            trial = self.find_trial(trial_id)
            if trial is None:
                raise LookupError(f"no trial {trial_id} in this ledger")
            return trial
        last = 0
        for entry in self.entries(trial_id, as_of=as_of):
            last = entry.position
        if last == 0:
            raise LookupError(f"trial {trial_id} was not yet open at {as_of.isoformat()}")
        past: Trial = self._app.repository.get(aggregate_id, version=last)
        return past

    def default_trial_id(self) -> str:
        """The store's trial when it holds exactly one (the usual case)."""
        trial_ids = self.trial_ids()
        where = self.store_description
        if not trial_ids:
            raise LookupError(f"{where} holds no trial yet: run `ledger init` or submit events")
        if len(trial_ids) > 1:
            raise LookupError(f"{where} holds several trials ({', '.join(trial_ids)}): name one")
        return trial_ids[0]

    @property
    def store_description(self) -> str:
        env = self._app.env
        if env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres":
            return f"postgresql database {env.get('POSTGRES_DBNAME')}"
        return f"sqlite {env.get('SQLITE_DBNAME')}"


def _hashed_from(audit: AuditLog, stored: int) -> int:
    """The first position hashed when recorded: after what an upgrade sealed later, or after
    everything stored when nothing was ever sealed (a store not written since the upgrade)."""
    if not audit.seals:
        return stored + 1
    return max((seal.size for seal in audit.seals if seal.hashed_later), default=0) + 1


def _check_sender(source: str, site: str | None) -> None:
    """The ledger's own name is never a sender's, and an authenticated site sends as itself."""
    if source == LEDGER_SOURCE:
        raise SubmissionRejectedError(
            ReasonCode.SOURCE_NOT_AUTHENTICATED,
            f"source {LEDGER_SOURCE!r} is reserved for the ledger's own decisions",
        )
    if site is not None and source != site:
        raise SubmissionRejectedError(
            ReasonCode.SOURCE_NOT_AUTHENTICATED,
            f"source {source!r} is not the authenticated sender {site!r}",
        )


def _check_same_sender(trial: Trial, target_id: str, source: str) -> None:
    owner = trial.target_source(target_id)
    if owner is not None and owner != source:
        raise SubmissionRejectedError(
            ReasonCode.FOREIGN_RECORD,
            f"event {target_id} was recorded from {owner!r}; only that sender may amend it",
        )


def _upstream_name(delivery: Delivery) -> str:
    return f"{delivery.topic}:{delivery.partition}"


def _original_text(raw: bytes) -> dict[str, str]:
    """The delivered bytes as text an auditor can turn back into exactly those bytes: as UTF-8
    when they are, base64 otherwise (the fields `submission` and `submission_encoding`)."""
    try:
        return {"submission": raw.decode("utf-8"), "submission_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"submission": base64.b64encode(raw).decode("ascii"),
                "submission_encoding": "base64"}


def _rejection_message(event: RejectionLog.Rejected, *, sequence: int) -> dict[str, Any]:
    """The `trial.rejections` message (contract §4), numbered for resumable publishing."""
    return {
        "sequence": sequence,
        "event_id": event.event_id,
        "reason_code": event.reason_code,
        "message": event.message,
        "submission": event.submission,
        "submission_encoding": event.submission_encoding,
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "rejected_at": format_timestamp(event.timestamp),
    }


def _entry(event: Trial.Event, trial_id: str) -> LedgerEntry:
    return LedgerEntry(
        position=event.originator_version,
        type=event.ledger_type,
        trial_id=trial_id,
        recorded_at=event.timestamp,
        data=event.data,
        subject_id=event.subject_id,
        occurred_on=event.occurred_on,
        event_id=event.event_id,
        source=event.source,
        entered_by=event.entered_by,
        reason=event.reason,
    )


def environment_store() -> str:
    return os.environ.get("LEDGER_STORE", DEFAULT_STORE)


def configured_signer(path: Path | None) -> Signer | None:
    """The signing key from `--signing-key`, else LEDGER_SIGNING_KEY; None when neither is set."""
    if path is None:
        named = os.environ.get(SIGNING_KEY_ENV)
        path = Path(named) if named else None
    return load_signing_key(path) if path is not None else None
