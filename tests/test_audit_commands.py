"""The audit commands as an auditor uses them (contract §6): checkpoint receipts, verify exit
codes, archive → replay equal to export byte for byte, diff explaining each change, old stores."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.aggregates.log_ids import LEDGER_LOG, REJECTIONS_LOG, audit_log_id
from ledger.aggregates.rejections import ReasonCode
from ledger.application import Delivery, LedgerService
from ledger.cli import main
from ledger.entries import format_timestamp
from ledger.ledger_reader import LedgerReader
from tests.builders import TRIAL_ID, FixedClock, Script, lines
from tests.test_audit import DAY0, build_store

DAY_LATER = datetime(2027, 1, 1, tzinfo=UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dataset_hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.suffix in (".csv", ".xpt", ".json")
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("commands"))


def test_verify_exit_codes_and_receipts(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify: 0 intact, 1 not intact (a receipt the log does not extend), 2 bad input."""
    receipt = tmp_path / "receipt.json"
    assert run(capsys, "checkpoint", "--store", store, "--out", str(receipt))[0] == 0
    held = json.loads(receipt.read_text())
    assert held["ledger"]["size"] > 0 and held["ledger"]["signature"]
    code, out, _ = run(capsys, "verify", "--store", store, "--checkpoint", str(receipt), "--json")
    assert code == 0 and json.loads(out)["intact"]
    forged = dict(held["ledger"], root="00" * 32)
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, out, _ = run(
        capsys, "verify", "--store", store, "--checkpoint", str(tmp_path / "forged.json"), "--json"
    )
    kinds = {p["kind"] for p in json.loads(out)["problems"]}
    assert code == 1 and kinds == {"bad_signature", "inconsistent_with_checkpoint"}
    code, _, err = run(capsys, "verify", "--store", store, "--checkpoint", str(tmp_path / "none"))
    assert code == 2 and err.count("\n") == 1


@pytest.mark.parametrize(
    ("as_of_index", "cutoff"),
    [
        pytest.param(None, None, id="everything"),
        pytest.param(None, "2025-02-20", id="cutoff only"),
        pytest.param(60, None, id="as of position 60"),
        pytest.param(120, "2025-03-01", id="as of position 120 with a cutoff"),
    ],
)
@pytest.mark.parametrize("fmt", ["csv", "xpt", "json"])
def test_replay_of_an_archive_equals_export_byte_for_byte(
    store: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    as_of_index: int | None,
    cutoff: str | None,
    fmt: str,
) -> None:
    """The datasets rebuilt from the archive alone are the export's bytes; manifests agree."""
    archive = tmp_path / "archive"
    assert run(capsys, "archive", "--store", store, "--out", str(archive))[0] == 0
    extra = ["--format", fmt]
    if as_of_index is not None:
        with LedgerService(store) as service:
            entry = list(service.entries(TRIAL_ID))[as_of_index - 1]
        extra += ["--as-of", format_timestamp(entry.recorded_at)]
    if cutoff:
        extra += ["--cutoff", cutoff]
    assert run(capsys, "export", "--store", store, "--out", str(tmp_path / "e"), *extra)[0] == 0
    assert run(capsys, "replay", str(archive), "--out", str(tmp_path / "r"), *extra)[0] == 0
    assert dataset_hashes(tmp_path / "e") == dataset_hashes(tmp_path / "r")
    assert dataset_hashes(tmp_path / "e")
    exported = json.loads((tmp_path / "e" / "manifest.json").read_text())
    replayed = json.loads((tmp_path / "r" / "manifest.json").read_text())
    for key in ("root", "size", "checkpoint", "position"):
        assert exported.get(key) == replayed.get(key), key
    assert exported["root"] and exported["checkpoint"]["signature"]


def test_a_tampered_archive_is_not_replayed(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One edited archive line: verify exits 1 and replay refuses to build anything."""
    archive = tmp_path / "archive"
    run(capsys, "archive", "--store", store, "--out", str(archive))
    path = archive / "ledger.jsonl"
    rows = path.read_text().splitlines()
    entry = json.loads(rows[40])
    entry["data"]["dose_mg"] = 30
    rows[40] = json.dumps(entry)
    path.write_text("\n".join(rows) + "\n")
    code, out, _ = run(capsys, "verify", "--archive", str(archive), "--json")
    assert code == 1
    assert json.loads(out)["problems"][0] == {
        "log": "ledger",
        "position": 41,
        "kind": "hash_mismatch",
        "detail": "content does not match its recorded leaf hash",
    }
    assert run(capsys, "replay", str(archive), "--out", str(tmp_path / "r"))[0] == 1
    assert not (tmp_path / "r").exists()


def store_without_seals(folder: Path) -> str:
    """A store as written before the ledger hashed its log: its audit rows dropped."""
    store = build_store(folder)
    with closing(sqlite3.connect(store)) as con:
        for log, trial in ((LEDGER_LOG, TRIAL_ID), (REJECTIONS_LOG, None)):
            con.execute(
                "delete from stored_events where originator_id=?", (audit_log_id(log, trial).hex,)
            )
        con.commit()
    return store


def store_sealed_later(folder: Path) -> tuple[str, int]:
    """A store written before the ledger hashed its log (its audit rows dropped), then written to
    once, which seals the earlier entries as 'hashed later': (the store, how many there were)."""
    store = store_without_seals(folder)
    with LedgerService(store, clock=FixedClock(DAY_LATER)) as service:
        old = len(list(service.entries(TRIAL_ID)))
        script = Script(counter=iter(range(10_000, 10_100)))
        report = service.submit_many(
            lines([script.envelope("subject.alive", "01-001", DAY0 + timedelta(days=90), {})])
        )
        assert report.accepted == 1
    return store, old


def test_a_store_written_before_hashing_still_opens_and_says_from_where(tmp_path: Path) -> None:
    """Drop the audit rows (an old store): it reads, the next batch seals the earlier entries as
    'hashed later', and verify says which positions those are."""
    from ledger.audit.inspection import verify_source

    store, old = store_sealed_later(tmp_path)
    with LedgerReader(store) as service:
        source = service.audit_source(TRIAL_ID)
    result = verify_source(source)
    assert result.intact, result.to_json_dict()["problems"]
    assert result.hashed_from == old + 1
    assert any(f"1..{old}" in note for note in result.notes)


def test_diff_names_each_changed_value_and_the_event_that_caused_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Between T1 and T2 one subject dies and a dose is corrected: exactly those rows change,
    each tied to its event's position, author and reason."""
    script = Script()
    envelopes = [
        *script.subject("01-001", "A", DAY0, dlt=False),
        *script.subject("01-002", "A", DAY0 + timedelta(days=1), dlt=False),
    ]
    store = str(tmp_path / "ledger.db")
    with LedgerService(store, clock=FixedClock()) as service:
        service.ensure_trial()
        service.submit_many(lines(envelopes))
        t1 = list(service.entries(TRIAL_ID))[-1].recorded_at
        died = script.envelope(
            "subject.died",
            "01-002",
            DAY0 + timedelta(days=50),
            {},
            entered_by="inv.li",
            reason=None,
        )
        service.submit_many(lines([died]))
        t2 = list(service.entries(TRIAL_ID))[-1].recorded_at
    code, out, _ = run(
        capsys,
        "diff",
        "--store",
        store,
        "--from",
        format_timestamp(t1),
        "--to",
        format_timestamp(t2),
        "--json",
    )
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    death_position = int(next(iter(document["events"])))
    assert document["events"][str(death_position)]["type"] == "subject.died"
    adsl = document["datasets"]["adsl"]
    changed = {row["variable"]: row for row in adsl["changed"]}
    assert {row["key"]["USUBJID"] for row in adsl["changed"]} == {f"{TRIAL_ID}-01-002"}
    assert changed["DTHDT"]["from"] is None
    assert changed["DTHDT"]["to"] == (DAY0 + timedelta(days=50)).isoformat()
    assert changed["DTHFL"]["to"] == "Y"
    assert all(row["caused_by"] == [death_position] for row in adsl["changed"])
    adtte = document["datasets"]["adtte"]
    os_rows = [r for r in adtte["changed"] if r["key"]["PARAMCD"] == "OS"]
    assert {r["variable"] for r in os_rows} >= {"CNSR", "ADT"}
    assert adsl["added"] == adsl["removed"] == []


SENDER_RULES = [
    pytest.param("edc-site-01", "edc-site-01", None, id="a site sending as itself is recorded"),
    pytest.param(
        "edc-site-02",
        "edc-site-01",
        ReasonCode.SOURCE_NOT_AUTHENTICATED,
        id="a site claiming another site's name is refused",
    ),
    pytest.param(
        "trial-ledger", None, ReasonCode.SOURCE_NOT_AUTHENTICATED, id="nobody sends as the ledger"
    ),
    pytest.param(
        "trial-ledger",
        "trial-ledger",
        ReasonCode.SOURCE_NOT_AUTHENTICATED,
        id="not even a topic named after it",
    ),
    pytest.param("edc-site-07", None, None, id="the shared topic (operator) records the source"),
]


@pytest.mark.parametrize(("source", "site", "expected"), SENDER_RULES)
def test_sender_rules(
    tmp_path: Path, source: str, site: str | None, expected: ReasonCode | None
) -> None:
    """Contract §7: the authenticated site is the source; the ledger's name is reserved."""
    script = Script()
    raw = lines([script.enroll("01-001", "A", DAY0)])[0]
    raw = json.dumps({**json.loads(raw), "source": source})
    with LedgerService(str(tmp_path / "l.db"), clock=FixedClock()) as service:
        service.ensure_trial()
        result = service.submit_tracked([Delivery(raw.encode(), "t", 0, 0, site=site)]).results[0]
    assert result.reason_code == expected


@pytest.mark.parametrize(
    ("amender", "expected"),
    [
        pytest.param("edc-site-01", None, id="the recording site may correct its record"),
        pytest.param("edc-site-02", ReasonCode.FOREIGN_RECORD, id="another site may not"),
    ],
)
@pytest.mark.parametrize("kind", ["record.corrected", "record.voided"])
def test_only_the_recording_site_amends_a_record(
    tmp_path: Path, amender: str, expected: ReasonCode | None, kind: str
) -> None:
    """Corrections and voids of another site's record are refused with FOREIGN_RECORD."""
    script = Script()
    enrolled = script.enroll("01-001", "A", DAY0)
    dose = script.envelope("fruquintinib.dosed", "01-001", DAY0, {"dose_mg": 3})
    data: dict[str, Any] = {"target_event_id": dose["event_id"]}
    if kind == "record.corrected":
        data["data"] = {"dose_mg": 4}
    amendment = script.envelope(kind, "01-001", DAY0, data, source=amender, reason="typo")
    with LedgerService(str(tmp_path / "l.db"), clock=FixedClock()) as service:
        service.ensure_trial()
        service.submit_many(lines([enrolled, dose]))
        result = service.submit_tracked(
            [Delivery(json.dumps(amendment).encode(), "t", 0, 0, site=amender)]
        ).results[0]
    assert result.reason_code == expected


def test_the_export_shortcut_gives_the_provenance_replay_computes(store: str) -> None:
    """export_provenance (root from the checkpoint over exactly the exported entries, else the
    tree continued from the frontier sealed within them) equals the tree rebuilt over every
    leaf hash: at every sealed size, one past and one before it, at 0, 1 and the whole log."""
    from ledger.audit.provenance import export_provenance
    from ledger.cli_plumbing import provenance_of

    with LedgerReader(store) as service:
        entries = list(service.entries(TRIAL_ID))
        checkpoints = service.checkpoints(TRIAL_ID)
        sizes = sorted({c["size"] for c in checkpoints if c["log"] == "ledger"})
        probes = sorted({0, 1, len(entries), *sizes, *(s + 1 for s in sizes),
                         *(s - 1 for s in sizes)} & set(range(len(entries) + 1)))
        assert len(probes) > 10
        continued = 0
        for size in probes:
            part = entries[:size]
            prefix = service.sealed_prefix(TRIAL_ID, size)
            sealed = prefix.frontier
            assert sealed is None or sealed[0] <= size
            continued += sealed is not None and sealed[0] < size
            expected = provenance_of(part, checkpoints)
            within = [c for c in checkpoints if c["log"] == "ledger" and c["size"] <= size]
            assert prefix.checkpoints == within, size
            assert prefix.leaf_hashes == [e.leaf_hash for e in part], size
            assert export_provenance([e.leaf_hash for e in part], checkpoints) == expected
            assert export_provenance(
                [e.leaf_hash for e in part], prefix.checkpoints, sealed
            ) == expected, size
        assert continued > 0, "some sizes go on from a sealed frontier"


def test_the_seals_over_a_prefix_are_what_was_known_at_its_moment(
    store: str, tmp_path: Path
) -> None:
    """`ledger export` takes a manifest's leaf hashes and checkpoints from the seals over the
    entries known at `--as-of` (`sealed_prefix`), not by the checkpoints' recorded times: at
    every entry's recorded time, a microsecond before it and before the trial opened, the
    checkpoints are the ledger's recorded by then, the hashes the entries', and the entries read
    with the prefix as many as it covers; on a store sealed as written and on one sealed later."""
    later, _ = store_sealed_later(tmp_path)
    for path in (store, later):
        with LedgerReader(path) as service:
            entries = list(service.entries(TRIAL_ID))
            times = sorted({e.recorded_at for e in entries})
            probes = [times[0] - timedelta(days=1)]
            probes += [t - d for t in times for d in (timedelta(microseconds=1), timedelta())]
            for moment in probes:
                prefix = service.sealed_prefix(TRIAL_ID, service.size(TRIAL_ID, as_of=moment))
                recorded = [c for c in service.checkpoints(TRIAL_ID, as_of=moment)
                            if c["log"] == LEDGER_LOG]
                assert prefix.checkpoints == recorded, (path, moment)
                known = [e for e in entries if e.recorded_at <= moment]
                assert prefix.size == len(known)
                assert prefix.leaf_hashes == [e.leaf_hash for e in known]
                read = list(service.entries(TRIAL_ID, as_of=moment, sealed=prefix))
                assert [e.position for e in read] == [e.position for e in known]
                assert prefix.hashed
            assert len(probes) > 20


def test_an_export_of_entries_not_yet_sealed_states_no_tree_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store written before the ledger hashed its log and not written since: its entries have
    no leaf hashes, so the export's manifest names no root, size or checkpoint."""
    store = store_without_seals(tmp_path)
    with LedgerReader(store) as service:
        prefix = service.sealed_prefix(TRIAL_ID, service.size(TRIAL_ID))
        assert prefix.size > 0 and prefix.leaf_hashes == [] and not prefix.hashed
    code, _, _ = run(capsys, "export", "--store", store, "--out", str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert code == 0
    assert not {"root", "size", "checkpoint"} & manifest.keys()


def test_a_tampered_sealed_frontier_does_not_reach_the_manifest(
    store: str, tmp_path: Path
) -> None:
    """The frontier stored beside a seal is not what `verify` checks (it rebuilds the tree from
    the leaves), so the export goes on from one only when it gives its seal's signed root: a
    zeroed frontier in the middle of the log leaves every as-of manifest's root the true one."""
    import shutil

    from ledger.audit.inspection import verify_source
    from ledger.audit.provenance import export_provenance
    from ledger.cli_plumbing import provenance_of

    tampered = str(tmp_path / "tampered.db")
    shutil.copyfile(store, tampered)
    with closing(sqlite3.connect(tampered)) as db, db:
        seals = db.execute(
            "SELECT rowid, state FROM stored_events WHERE topic = 'trial-ledger:AuditLog.Sealed'"
            " ORDER BY originator_id, originator_version"
        ).fetchall()
        ledger_seals = [(rowid, json.loads(state)) for rowid, state in seals
                        if json.loads(state)["checkpoint"]["log"] == "ledger"]
        rowid, state = ledger_seals[len(ledger_seals) // 2]
        state["frontier"][0] = "0" * 64
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                   (json.dumps(state).encode(), rowid))
    end = state["first_position"] + len(state["leaf_hashes"]) - 1
    with LedgerReader(tampered) as service:
        entries = list(service.entries(TRIAL_ID))
        checkpoints = service.checkpoints(TRIAL_ID)
        assert verify_source(service.audit_source(TRIAL_ID)).intact  # verify cannot see it
        for size in (end + 1, end + 2):
            sealed = service.sealed_prefix(TRIAL_ID, size).frontier
            assert sealed is not None and sealed[0] == end  # the tampered one
            part = entries[:size]
            assert export_provenance(
                [e.leaf_hash for e in part], checkpoints, sealed
            ) == provenance_of(part, checkpoints)
