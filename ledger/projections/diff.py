"""What changed in the datasets between two as-of points, and which recorded events caused it.

The inspector's question ("why did subject 01-003's PFS change between the interim and the final
lock?") answered row by row: both snapshots are built by the one fold (`build_datasets`) from the
same ledger, rows are matched on their natural keys, and each added, removed or changed row is tied
to the events recorded between the two points that concern its subject (a correction or void counts
for the subject of the record it amends).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import pandas as pd

from ledger.entries import LedgerEntry, format_timestamp
from ledger.projections.datasets import build_datasets

ROW_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "adsl": ("USUBJID",),
    "adtte": ("USUBJID", "PARAMCD"),
    "adrs": ("USUBJID", "PARAMCD", "ADT"),
    "adae": ("USUBJID", "AESPID"),
}
"""Natural keys: a sequence number (ASEQ, AESEQ) renumbers when an earlier row appears, so it is
neither a key nor a change worth reporting."""
_RENUMBERED: Final = frozenset({"ASEQ", "AESEQ"})


def diff_datasets(
    entries: Sequence[LedgerEntry],
    *,
    before: datetime,
    after: datetime,
    cutoff: date | None,
) -> dict[str, Any]:
    """Rows added, removed and changed between what the ledger knew at `before` and at `after`."""
    if after < before:
        raise ValueError("--to must not be earlier than --from")
    old = build_datasets(entries, as_of=before, cutoff=cutoff).frames()
    new = build_datasets(entries, as_of=after, cutoff=cutoff).frames()
    between = [e for e in entries if before < e.recorded_at <= after]
    causes = _causes_by_subject(entries, between)
    datasets = {
        name: _diff_frame(old[name], new[name], ROW_KEYS[name], causes)
        for name in ROW_KEYS
        if name in old and name in new
    }
    return {
        "from": format_timestamp(before),
        "to": format_timestamp(after),
        "cutoff": cutoff.isoformat() if cutoff else None,
        "datasets": datasets,
        "events": {
            str(e.position): {
                "type": e.type,
                "subject_id": e.subject_id,
                "recorded_at": format_timestamp(e.recorded_at),
                "entered_by": e.entered_by,
                "source": e.source,
                "reason": e.reason,
            }
            for e in between
        },
    }


def render_diff(document: Mapping[str, Any]) -> str:
    lines = [
        f"datasets as known at {document['from']} → {document['to']}"
        f" (cutoff {document['cutoff'] or 'none'})"
    ]
    events = document["events"]
    for name, change in document["datasets"].items():
        counts = {kind: len(change[kind]) for kind in ("added", "removed", "changed")}
        lines.append(
            f"{name}: {counts['added']} added, {counts['removed']} removed, "
            f"{counts['changed']} values changed"
        )
        for kind in ("added", "removed"):
            lines += [
                f"  {kind} {_key_text(row['key'])}{_why(row, events)}" for row in change[kind]
            ]
        lines += [
            f"  {_key_text(row['key'])} {row['variable']}: {row['from']!r} → {row['to']!r}"
            f"{_why(row, events)}"
            for row in change["changed"]
        ]
    return "\n".join(lines)


def _why(row: Mapping[str, Any], events: Mapping[str, Mapping[str, Any]]) -> str:
    causes = []
    for position in row["caused_by"]:
        event = events[str(position)]
        reason = f", why: {event['reason']}" if event["reason"] else ""
        causes.append(f"#{position} {event['type']} by {event['entered_by']}{reason}")
    return "  ← " + "; ".join(causes) if causes else ""


def _key_text(key: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in key.items())


def _causes_by_subject(
    entries: Iterable[LedgerEntry], between: Sequence[LedgerEntry]
) -> dict[str, list[int]]:
    """USUBJID → positions recorded in the interval that concern that subject."""
    subject_of_event = {e.event_id: e.subject_id for e in entries if e.event_id and e.subject_id}
    causes: dict[str, list[int]] = {}
    for entry in between:
        subject = entry.subject_id
        if subject is None and "target_event_id" in entry.data:
            subject = subject_of_event.get(str(entry.data["target_event_id"]))
        if subject is not None:
            causes.setdefault(f"{entry.trial_id}-{subject}", []).append(entry.position)
    return causes


def _diff_frame(
    old: pd.DataFrame,
    new: pd.DataFrame,
    keys: tuple[str, ...],
    causes: Mapping[str, list[int]],
) -> dict[str, list[dict[str, Any]]]:
    old_rows, new_rows = _rows_by_key(old, keys), _rows_by_key(new, keys)
    result: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}

    def caused(key: tuple[Any, ...]) -> list[int]:
        return causes.get(str(key[0]), [])

    for key in sorted(new_rows.keys() - old_rows.keys(), key=_order):
        result["added"].append({"key": _named(keys, key), "caused_by": caused(key)})
    for key in sorted(old_rows.keys() - new_rows.keys(), key=_order):
        result["removed"].append({"key": _named(keys, key), "caused_by": caused(key)})
    for key in sorted(old_rows.keys() & new_rows.keys(), key=_order):
        before, after = old_rows[key], new_rows[key]
        for variable in after:
            if variable in keys or variable in _RENUMBERED:
                continue
            was, now = _plain(before.get(variable)), _plain(after.get(variable))
            if was != now:
                result["changed"].append(
                    {
                        "key": _named(keys, key),
                        "variable": variable,
                        "from": was,
                        "to": now,
                        "caused_by": caused(key),
                    }
                )
    return result


def _rows_by_key(
    frame: pd.DataFrame, keys: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in frame.to_dict("records"):
        base = tuple(_plain(record.get(k)) for k in keys)
        key, n = base, 1
        while key in rows:  # two rows on one key (e.g. two assessments a day): keep them apart
            n += 1
            key = (*base, n)
        rows[key] = {str(k): v for k, v in record.items()}
    return rows


def _named(keys: tuple[str, ...], key: tuple[Any, ...]) -> dict[str, Any]:
    named = dict(zip(keys, key, strict=False))
    if len(key) > len(keys):
        named["occurrence"] = key[-1]
    return named


def _order(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in key)


def _plain(value: Any) -> Any:
    """A cell as JSON: missing values are None, dates ISO, numpy scalars Python numbers."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()[:10] if isinstance(value, date) else value.isoformat()
    if hasattr(value, "item"):
        return _plain(value.item())
    return value
