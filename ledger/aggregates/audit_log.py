"""The audit log of one append-only log (a trial's ledger, or the store's rejections).

Beside every stored batch the ledger records, in the same transaction, the RFC 6962 leaf hashes of
the batch's entries and the signed tree head after it (a checkpoint). The hashing and signing happen
at the edge (`ledger.audit`); this aggregate only keeps what it is given in order and refuses a
batch that does not continue the log, so the store holds one unbroken chain of tree heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate, event

from ledger.aggregates.log_ids import AUDIT_LOG_STARTED_TOPIC, audit_log_id


@dataclass(frozen=True, slots=True)
class Seal:
    """One stored batch: its entries' leaf hashes and the signed tree head after it."""

    first_position: int
    leaf_hashes: tuple[str, ...]
    checkpoint: dict[str, Any]
    frontier: tuple[str, ...]
    hashed_later: bool
    """True when the entries were recorded before the ledger hashed its log (an old store), so
    their hashes were computed when first sealed, not when recorded."""

    @property
    def size(self) -> int:
        return self.first_position + len(self.leaf_hashes) - 1


class AuditLogBrokenError(Exception):
    """A batch that does not continue the log: a bug or a second writer, never recorded."""


class AuditLog(Aggregate):
    TOPIC = "trial-ledger:AuditLog"

    class Event(Aggregate.Event):
        TOPIC = "trial-ledger:AuditLog.Event"

    class Started(Event, Aggregate.Created):
        TOPIC = AUDIT_LOG_STARTED_TOPIC
        log: str
        trial_id: str | None

    @event(Started)
    def __init__(self, log: str, trial_id: str | None) -> None:
        self.log = log
        self.trial_id = trial_id
        self.leaf_hashes: list[str] = []
        self.seals: list[Seal] = []
        self.public_keys: dict[str, str] = {}

    @classmethod
    def start(cls, log: str, trial_id: str | None) -> AuditLog:
        return cls._create(cls.Started, id=audit_log_id(log, trial_id), log=log, trial_id=trial_id)

    @property
    def size(self) -> int:
        return len(self.leaf_hashes)

    @property
    def frontier(self) -> tuple[str, ...]:
        return self.seals[-1].frontier if self.seals else ()

    @property
    def latest_checkpoint(self) -> dict[str, Any] | None:
        return self.seals[-1].checkpoint if self.seals else None

    def register_key(self, key_id: str, public_key_pem: str) -> None:
        """Keep the public half of a signing key the first time a checkpoint is signed with it."""
        if key_id not in self.public_keys:
            self._key_registered(key_id, public_key_pem)

    @event("KeyRegistered", topic="trial-ledger:AuditLog.KeyRegistered")
    def _key_registered(self, key_id: str, public_key_pem: str) -> None:
        self.public_keys[key_id] = public_key_pem

    def seal(
        self,
        *,
        first_position: int,
        leaf_hashes: list[str],
        checkpoint: dict[str, Any],
        frontier: list[str],
        hashed_later: bool = False,
    ) -> None:
        """Append a batch's leaf hashes and the checkpoint over the log after it."""
        if first_position != self.size + 1:
            raise AuditLogBrokenError(
                f"{self.log} log holds {self.size} entries; a batch from position "
                f"{first_position} does not continue it"
            )
        if checkpoint.get("size") != self.size + len(leaf_hashes):
            raise AuditLogBrokenError("checkpoint size does not match the sealed entries")
        self._sealed(
            first_position=first_position,
            leaf_hashes=leaf_hashes,
            checkpoint=checkpoint,
            frontier=frontier,
            hashed_later=hashed_later,
        )

    @event("Sealed", topic="trial-ledger:AuditLog.Sealed")
    def _sealed(
        self,
        first_position: int,
        leaf_hashes: list[str],
        checkpoint: dict[str, Any],
        frontier: list[str],
        hashed_later: bool,
    ) -> None:
        self.leaf_hashes.extend(leaf_hashes)
        self.seals.append(
            Seal(
                first_position=first_position,
                leaf_hashes=tuple(leaf_hashes),
                checkpoint=checkpoint,
                frontier=tuple(frontier),
                hashed_later=hashed_later,
            )
        )
