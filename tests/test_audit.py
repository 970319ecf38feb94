"""The ledger proves itself (contract §6): tampering with the store or an archive is found at the
first position it affects; untouched ledgers verify; receipts catch a consistent rewrite."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.aggregates.log_ids import LEDGER_LOG, audit_log_id
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.application import LedgerService
from ledger.audit.checkpoints import Signer, make_checkpoint
from ledger.audit.inspection import AuditSource, records_from_messages, verify_source
from ledger.audit.merkle import Frontier
from ledger.audit.sealing import entry_leaf_hash
from tests.builders import TRIAL_ID, FixedClock, Script, lines

DAY0 = date(2025, 1, 6)
SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def build_store(
    folder: Path | None, *, signer: Signer | None = SIGNER, batch: int = 15, url: str | None = None
) -> str:
    """Six subjects over two cohorts, a correction, a void and two rejected lines, in small
    batches so the log has many checkpoints (in folder/ledger.db, or the store at `url`)."""
    script = Script()
    envelopes: list[dict[str, Any]] = []
    for n, cohort in enumerate(["A", "A", "A", "B", "B", "B"]):
        envelopes += script.subject(
            f"01-{n + 1:03d}", cohort, DAY0 + timedelta(days=40 * (n // 3) + n), dlt=False
        )
    dosed = next(e for e in envelopes if e["type"] == "fruquintinib.dosed")
    envelopes.append(
        script.envelope(
            "record.corrected",
            dosed["subject_id"],
            DAY0,
            {"target_event_id": dosed["event_id"], "data": {"dose_mg": 3}},
            reason="transcription error",
        )
    )
    alive = next(e for e in envelopes if e["type"] == "subject.alive")
    envelopes.append(
        script.envelope(
            "record.voided",
            alive["subject_id"],
            DAY0,
            {"target_event_id": alive["event_id"]},
            reason="wrong subject",
        )
    )
    raw = [*lines(envelopes), "{not json", json.dumps({**envelopes[0], "source": "trial-ledger"})]
    store = url or str(Path(str(folder)) / "ledger.db")
    with LedgerService(store, clock=FixedClock(), signer=signer) as service:
        service.ensure_trial()
        for start in range(0, len(raw), batch):
            part = raw[start : start + batch]
            service.submit_many(
                part,
                origin="file:test.jsonl",
                line_numbers=list(range(start + 1, start + 1 + len(part))),
            )
    return store


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("pristine"))


def verify_store(store: str, **kwargs: Any) -> dict[str, Any]:
    with LedgerService(store) as service:
        source = service.audit_source(TRIAL_ID)
    return verify_source(source, **kwargs).to_json_dict()


def first_position(report: dict[str, Any]) -> int | None:
    positions = [p["position"] for p in report["problems"] if p["position"] is not None]
    return min(positions, default=None)


def test_an_untouched_store_verifies_with_both_logs_sealed(pristine: str) -> None:
    """Every entry hashed, every checkpoint signed and matching: intact, nothing to report."""
    report = verify_store(pristine)
    assert report["intact"], report["problems"]
    assert report["logs"]["ledger"]["checkpoints"] > 10
    assert report["logs"]["rejections"]["size"] == 2
    assert report["warnings"] == []


def test_leaf_hashes_travel_with_the_entries(pristine: str) -> None:
    """Each entry read from the store carries the leaf hash of its own canonical content."""
    with LedgerService(pristine) as service:
        entries = list(service.entries(TRIAL_ID))
        rejections = service.audit_source(TRIAL_ID).rejections
    assert all(e.leaf_hash == entry_leaf_hash(e.to_json_dict()) for e in entries)
    assert all(r.stored_leaf == entry_leaf_hash(dict(r.entry or {})) for r in rejections)


def test_without_a_key_checkpoints_are_unsigned_and_verify_says_so(tmp_path: Path) -> None:
    """No signing key: hashes still hold, and the report warns that nothing is signed."""
    report = verify_store(build_store(tmp_path, signer=None))
    assert report["intact"]
    assert any("unsigned" in warning for warning in report["warnings"])


# --- tampering with the SQLite store, as a database administrator could -------------------------


def _rows(con: sqlite3.Connection) -> Callable[[int], bytes]:
    def state(version: int) -> bytes:
        row = con.execute(
            "select state from stored_events where originator_id=? and originator_version=?",
            (TRIAL_ID_HEX, version),
        ).fetchone()
        value = row[0]
        return value if isinstance(value, bytes) else value.encode()

    return state


TRIAL_ID_HEX = trial_aggregate_id(TRIAL_ID).hex


def _set(con: sqlite3.Connection, version: int, state: bytes) -> None:
    con.execute(
        "update stored_events set state=? where originator_id=? and originator_version=?",
        (state, TRIAL_ID_HEX, version),
    )


def _edit_payload(con: sqlite3.Connection, pos: int, rng: random.Random) -> None:
    document = json.loads(_rows(con)(pos))
    field = rng.choice(["data", "entered_by", "occurred_on", "source"])
    if field == "data":
        document["data"]["tampered"] = rng.randint(0, 9)
    elif field == "occurred_on":
        document["occurred_on"] = {"_type_": "date_iso", "_data_": "2024-12-31"}
    else:
        document[field] = f"{document[field]}x"
    _set(con, pos, json.dumps(document).encode())


def _edit_time(con: sqlite3.Connection, pos: int, rng: random.Random) -> None:
    document = json.loads(_rows(con)(pos))
    stamp = document["timestamp"]["_data_"]
    document["timestamp"]["_data_"] = f"{int(stamp[:4]) - rng.randint(1, 3)}{stamp[4:]}"
    _set(con, pos, json.dumps(document).encode())


def _delete(con: sqlite3.Connection, pos: int, _: random.Random) -> None:
    con.execute(
        "delete from stored_events where originator_id=? and originator_version=?",
        (TRIAL_ID_HEX, pos),
    )


def _renumber_after(con: sqlite3.Connection, pos: int, step: int) -> None:
    last = con.execute(
        "select max(originator_version) from stored_events where originator_id=?", (TRIAL_ID_HEX,)
    ).fetchone()[0]
    versions = range(pos, last + 1) if step < 0 else range(last, pos - 1, -1)
    for version in versions:
        con.execute(
            "update stored_events set originator_version=? "
            "where originator_id=? and originator_version=?",
            (version + step, TRIAL_ID_HEX, version),
        )


def _delete_renumber(con: sqlite3.Connection, pos: int, rng: random.Random) -> None:
    _delete(con, pos, rng)
    _renumber_after(con, pos + 1, -1)


def _insert(con: sqlite3.Connection, pos: int, rng: random.Random) -> None:
    """A forged event slipped in at `pos`, later ones moved up one place."""
    forged = json.loads(_rows(con)(pos))
    forged["entered_by"] = "forger"
    topic = con.execute(
        "select topic from stored_events where originator_id=? and originator_version=?",
        (TRIAL_ID_HEX, pos),
    ).fetchone()[0]
    _renumber_after(con, pos, +1)
    con.execute(
        "insert into stored_events (originator_id, originator_version, topic, state) "
        "values (?, ?, ?, ?)",
        (TRIAL_ID_HEX, pos, topic, json.dumps(forged).encode()),
    )


def _swap(con: sqlite3.Connection, pos: int, _: random.Random) -> None:
    state = _rows(con)
    first, second = state(pos), state(pos + 1)
    _set(con, pos, second)
    _set(con, pos + 1, first)


TAMPERINGS: dict[str, Callable[[sqlite3.Connection, int, random.Random], None]] = {
    "edit payload": _edit_payload,
    "edit recorded time": _edit_time,
    "delete": _delete,
    "delete and renumber": _delete_renumber,
    "insert": _insert,
    "swap neighbours": _swap,
}


@pytest.mark.parametrize("kind", list(TAMPERINGS))
def test_store_tampering_is_found_at_its_first_position(
    kind: str, pristine: str, tmp_path: Path
) -> None:
    """40 random tamperings of each kind on the SQLite rows: each found, at the right position."""
    rng = random.Random(f"store-{kind}")
    with closing(sqlite3.connect(pristine)) as con:
        size = con.execute(
            "select max(originator_version) from stored_events where originator_id=?",
            (TRIAL_ID_HEX,),
        ).fetchone()[0]
    for attempt in range(40):
        copy = tmp_path / f"{attempt}.db"
        shutil.copy(pristine, copy)
        pos = rng.randint(2, size - 2)
        with closing(sqlite3.connect(copy)) as con:
            TAMPERINGS[kind](con, pos, rng)
            con.commit()
        report = verify_store(str(copy))
        assert not report["intact"], f"{kind} at {pos} not found"
        assert first_position(report) == pos, (kind, pos, report["problems"][:3])
        copy.unlink()


def test_a_consistent_truncation_is_caught_only_by_a_receipt(pristine: str, tmp_path: Path) -> None:
    """Cut the tail and its audit rows together: stored checkpoints agree, the receipt does not."""
    with LedgerService(pristine) as service:
        receipt = service.latest_checkpoints(TRIAL_ID)["ledger"]
        seals = service.audit_source(TRIAL_ID).checkpoints
    assert receipt is not None
    keep = [c for c in seals if c["log"] == LEDGER_LOG][-4]["size"]
    copy = tmp_path / "cut.db"
    shutil.copy(pristine, copy)
    audit_hex = audit_log_id(LEDGER_LOG, TRIAL_ID).hex
    with closing(sqlite3.connect(copy)) as con:
        con.execute(
            "delete from stored_events where originator_id=? and originator_version>?",
            (TRIAL_ID_HEX, keep),
        )
        for version, state in con.execute(
            "select originator_version, state from stored_events where originator_id=?",
            (audit_hex,),
        ).fetchall():
            document = json.loads(state)
            if document.get("checkpoint", {}).get("size", 0) > keep:
                con.execute(
                    "delete from stored_events where originator_id=? and originator_version=?",
                    (audit_hex, version),
                )
        con.commit()
    assert verify_store(str(copy))["intact"]
    report = verify_store(str(copy), receipts=[receipt])
    assert not report["intact"]
    assert {p["kind"] for p in report["problems"]} == {"inconsistent_with_checkpoint"}
    assert first_position(report) == keep + 1


# --- tampering with an archive: 1,000 random attacks --------------------------------------------


def _archive_parts(store: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    with LedgerService(store) as service:
        entries = [e.to_json_dict() for e in service.entries(TRIAL_ID)]
        checkpoints = service.checkpoints(TRIAL_ID)
        keys = service.public_keys(TRIAL_ID)
    return entries, checkpoints, keys


def _rehash(
    entries: list[dict[str, Any]], checkpoints: list[dict[str, Any]], signer: Signer | None
) -> list[dict[str, Any]]:
    """What an attacker who rewrote history does next: recompute every hash and tree head."""
    frontier, roots = Frontier(), {}
    for entry in entries:
        entry["leaf_hash"] = entry_leaf_hash(entry)
        frontier.append(bytes.fromhex(entry["leaf_hash"]))
        roots[frontier.size] = frontier.root().hex()
    rewritten = []
    for c in checkpoints:
        if c["log"] != LEDGER_LOG or roots.get(c["size"]) == c["root"]:
            rewritten.append(c)
        elif signer is None:
            rewritten.append({**c, "root": roots.get(c["size"], c["root"])})
        else:
            rewritten.append(
                make_checkpoint(
                    trial_id=c["trial_id"],
                    log=c["log"],
                    size=c["size"],
                    root=roots.get(c["size"], c["root"]),
                    recorded_at=c["recorded_at"],
                    signer=signer,
                )
            )
    return rewritten


def test_a_thousand_archive_tamperings_are_found(pristine: str) -> None:
    """Edit, re-time, delete, insert, reorder, truncate, rewrite-and-rehash (keeping or
    forging signatures): every one of 1,000 is found, at the first position it affects."""
    entries, checkpoints, keys = _archive_parts(pristine)
    with LedgerService(pristine) as service:
        receipt = service.latest_checkpoints(TRIAL_ID)["ledger"]
    forger = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
    rng = random.Random(20261201)
    kinds = ["edit", "time", "delete", "insert", "swap", "truncate", "rehash", "resign"]
    found: dict[str, int] = dict.fromkeys(kinds, 0)
    for attempt in range(1000):
        kind = kinds[attempt % len(kinds)]
        lines_ = [dict(e, data=dict(e["data"])) for e in entries]
        held = [c for c in checkpoints if c["log"] == LEDGER_LOG]  # rejections: not archived here
        pos = rng.randint(2, len(lines_) - 3)
        expected = pos
        receipts: list[dict[str, Any]] = []
        trusted = keys
        if kind == "edit":
            lines_[pos - 1]["data"]["x"] = rng.random()
        elif kind == "time":
            lines_[pos - 1]["recorded_at"] = "2020" + lines_[pos - 1]["recorded_at"][4:]
        elif kind == "delete":
            del lines_[pos - 1]
        elif kind == "insert":
            lines_.insert(pos - 1, dict(lines_[pos - 1], entered_by="forger"))
        elif kind == "swap":
            lines_[pos - 1], lines_[pos] = lines_[pos], lines_[pos - 1]
        elif kind == "truncate":  # at a checkpoint, so what is left looks complete
            pos = 1 + rng.choice([c["size"] for c in held if c["log"] == LEDGER_LOG][:-1])
            expected = pos
            del lines_[pos - 1 :]
            held = [c for c in held if c["log"] != LEDGER_LOG or c["size"] < pos]
            receipts = [receipt] if receipt else []
        else:  # rewrite history, then recompute every hash (and, with a stolen key, sign)
            lines_[pos - 1]["entered_by"] = "rewritten"
            held = _rehash(lines_, held, forger if kind == "resign" else None)
            if kind == "resign":
                receipts, trusted = [], {"k": SIGNER.public_key_pem}
            # the earliest checkpoint covering pos is where a rehash can first be seen
            expected = 1 + max(
                (c["size"] for c in held if c["log"] == LEDGER_LOG and c["size"] < pos), default=0
            )
        source = AuditSource(
            "archive", TRIAL_ID, records_from_messages(lines_, "position"), [], held, keys
        )
        report = verify_source(source, receipts=receipts, public_keys=trusted).to_json_dict()
        assert not report["intact"], (kind, pos)
        assert first_position(report) == expected, (kind, pos, report["problems"][:3])
        found[kind] += 1
    assert sum(found.values()) == 1000
