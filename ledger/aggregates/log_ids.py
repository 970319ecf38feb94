"""The store's logs beside the trials: their names and aggregate ids, without their classes.

Reading the store needs the ids of a trial's audit log and of the rejection log, not the
`AuditLog` and `RejectionLog` aggregates (each class builds its event classes when imported):
read commands take the ids from here, as they take the Trial's from `trial_topics`.
"""

from __future__ import annotations

from typing import Final
from uuid import NAMESPACE_URL, UUID, uuid5

__all__ = [
    "AUDIT_LOG_STARTED_TOPIC", "LEDGER_LOG", "REJECTIONS_LOG", "audit_log_id", "rejection_log_id"
]

LEDGER_LOG: Final = "ledger"
REJECTIONS_LOG: Final = "rejections"
AUDIT_LOG_STARTED_TOPIC: Final = "trial-ledger:AuditLog.Started"
"""The stored topic of an audit log's first event, which names its log and trial."""


def audit_log_id(log: str, trial_id: str | None) -> UUID:
    """One audit log per trial ledger, and one for the store's rejections."""
    if log == REJECTIONS_LOG:
        return uuid5(NAMESPACE_URL, "trial-ledger:audit:rejections")
    return uuid5(NAMESPACE_URL, f"trial-ledger:audit:ledger:{trial_id}")


def rejection_log_id() -> UUID:
    """The one log of rejected deliveries (`RejectionLog`)."""
    return uuid5(NAMESPACE_URL, "trial-ledger:rejection-log")
