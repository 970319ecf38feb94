"""Attacks on a sealed store or archive by someone who can write the files but holds no signing
key, each as a probe of the product found it working (2026-12-02), and what `verify` and the
reads now say about it: stripped signatures with recomputed hashes, a deleted audit log, rows
below position 1, a name given twice in a stored row, a recorded time without its offset, an
archive cut short under its own manifest; and the writer that would record unsigned into a
signed log."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.aggregates.log_ids import LEDGER_LOG, audit_log_id
from ledger.application import LedgerService
from ledger.audit.checkpoints import Signer
from ledger.audit.merkle import Frontier
from ledger.audit.sealing import entry_leaf
from ledger.audit_sealing import SigningKeyRequiredError, UnsealedHistoryError
from ledger.cli import main
from ledger.cli_plumbing import EXIT_REJECTED
from ledger.ledger_reader import LedgerReader
from tests.builders import TRIAL_ID, Script, lines
from tests.test_audit import DAY0, SIGNER, TRIAL_ID_HEX, build_store, verify_store

AUDIT_HEX = audit_log_id(LEDGER_LOG, TRIAL_ID).hex
TRUSTED = {"signer": SIGNER.public_key_pem}


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("sealed"))


@pytest.fixture
def copy(sealed: str, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    shutil.copy(sealed, target)
    return target


def rows_of(store: Path, originator_hex: str) -> list[tuple[int, str, bytes]]:
    with closing(sqlite3.connect(store)) as con:
        found = con.execute(
            "select originator_version, topic, state from stored_events where originator_id=?"
            " order by originator_version",
            (originator_hex,),
        ).fetchall()
    return [(v, t, s if isinstance(s, bytes) else s.encode()) for v, t, s in found]


def write(store: Path, originator_hex: str, version: int, state: bytes) -> None:
    with closing(sqlite3.connect(store)) as con:
        con.execute(
            "update stored_events set state=? where originator_id=? and originator_version=?",
            (state, originator_hex, version),
        )
        con.commit()


def edit_dose(store: Path) -> int:
    """Change a dose recorded after the first checkpoints (keeping the row decodable); its
    position."""
    for version, _, state in rows_of(store, TRIAL_ID_HEX):
        if version > 40 and b'"dose_mg":4' in state:
            write(store, TRIAL_ID_HEX, version, state.replace(b'"dose_mg":4', b'"dose_mg":5', 1))
            return version
    raise AssertionError("no dose of 4 mg to edit")


def reseal(store: Path, *, signer: Signer | None, from_size: int = 0) -> None:
    """What an attacker does after editing: recompute every leaf hash, frontier and root of the
    ledger's audit log from the entries as they now read, with the checkpoints of sizes above
    `from_size` unsigned (`signer` None) or signed with the attacker's own key."""
    with LedgerReader(str(store)) as reader:
        objects = [record.entry for record in reader.audit_source(TRIAL_ID).ledger]
    leaves = [entry_leaf(entry) for entry in objects if entry is not None]
    frontier = Frontier()
    for version, topic, state in rows_of(store, AUDIT_HEX):
        if not topic.endswith("Sealed"):
            continue
        seal = json.loads(state)
        first, count = seal["first_position"], len(seal["leaf_hashes"])
        batch = leaves[first - 1 : first - 1 + count]
        frontier.extend(batch)
        checkpoint = seal["checkpoint"]
        if checkpoint["size"] > from_size:
            seal["leaf_hashes"] = [leaf.hex() for leaf in batch]
            seal["frontier"] = frontier.to_hex_list()
            checkpoint["root"] = frontier.root().hex()
            checkpoint["key_id"] = None if signer is None else signer.key_id
            checkpoint["signature"] = None if signer is None else signer.sign(checkpoint)
            write(store, AUDIT_HEX, version, json.dumps(seal, separators=(",", ":")).encode())


def kinds(report: dict[str, Any]) -> set[str]:
    return {problem["kind"] for problem in report["problems"]}


# --- signatures stripped after a rewrite ---------------------------------------------------------


def test_a_rewrite_with_every_signature_stripped_fails_against_the_named_key(copy: Path) -> None:
    """Edit, recompute every hash and root, strip every signature: the named key catches it."""
    edit_dose(copy)
    reseal(copy, signer=None)
    named = verify_store(str(copy), public_keys=TRUSTED)
    assert not named["intact"]
    assert "bad_signature" in kinds(named)
    assert any("nothing ties it to the key given" in p["detail"] for p in named["problems"])
    # Without a key named, nothing tells a rewrite from a ledger that never signed: it says so.
    unnamed = verify_store(str(copy))
    assert any("unsigned" in warning for warning in unnamed["warnings"])


def test_unsigned_checkpoints_after_signed_ones_fail_even_without_a_named_key(copy: Path) -> None:
    """Strip only the checkpoints from the edit on: a signed log does not go unsigned."""
    position = edit_dose(copy)
    reseal(copy, signer=None, from_size=position - 1)
    report = verify_store(str(copy))
    assert not report["intact"]
    assert "bad_signature" in kinds(report)
    assert any("earlier checkpoints of the log are signed" in p["detail"]
               for p in report["problems"])


def test_a_rewrite_signed_with_another_key_fails_against_the_named_key(copy: Path) -> None:
    """Re-sign the rewritten log with the attacker's own key: not the key named."""
    edit_dose(copy)
    forger = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39))))
    reseal(copy, signer=forger)
    assert "bad_signature" in kinds(verify_store(str(copy), public_keys=TRUSTED))


# --- the audit log deleted -----------------------------------------------------------------------


def test_a_store_whose_audit_log_was_deleted_is_not_intact(copy: Path) -> None:
    """No seal at all is not an old store to take at its word: nothing proves the entries."""
    edit_dose(copy)
    with closing(sqlite3.connect(copy)) as con:
        con.execute("delete from stored_events where originator_id=?", (AUDIT_HEX,))
        con.commit()
    report = verify_store(str(copy))
    assert not report["intact"]
    unsealed = [p for p in report["problems"] if p["kind"] == "unsealed"]
    assert unsealed and unsealed[0]["position"] == 1
    assert "no checkpoint covers any of the" in unsealed[0]["detail"]


# --- rows beside the log -------------------------------------------------------------------------


def test_rows_below_position_one_are_found_and_never_read(copy: Path) -> None:
    """Rows at versions 0 and -1 beside the log: verify names them, history never shows them."""
    third = rows_of(copy, TRIAL_ID_HEX)[2]
    forged = third[2].replace(b'"01-001"', b'"01-777"')
    with closing(sqlite3.connect(copy)) as con:
        for version in (0, -1):
            con.execute(
                "insert into stored_events (originator_id, originator_version, topic, state)"
                " values (?, ?, ?, ?)",
                (TRIAL_ID_HEX, version, third[1], forged),
            )
        con.commit()
    report = verify_store(str(copy), public_keys=TRUSTED)
    assert not report["intact"]
    inserted = [p for p in report["problems"] if p["kind"] == "inserted"]
    assert inserted and "-1, 0" in inserted[0]["detail"]
    with LedgerReader(str(copy)) as reader:
        assert list(reader.history(TRIAL_ID, "01-777")) == []
        assert all(entry.position >= 1 for entry in reader.history(TRIAL_ID, "01-001"))


# --- one stored row, two readings ----------------------------------------------------------------


def test_a_name_given_twice_in_a_stored_row_is_undecodable(copy: Path) -> None:
    """Python reads the last of two names, SQLite's subject index the first: a finding."""
    version, _, state = next(r for r in rows_of(copy, TRIAL_ID_HEX) if b'"01-002"' in r[2])
    write(copy, TRIAL_ID_HEX, version, b'{"subject_id":"zz",' + state[1:])
    report = verify_store(str(copy), public_keys=TRUSTED)
    assert not report["intact"]
    first = report["problems"][0]  # content problems come first; the tree heads follow from it
    assert (first["position"], first["kind"]) == (version, "undecodable")
    assert "'subject_id' twice" in first["detail"]


def test_a_recorded_time_without_its_offset_is_undecodable(copy: Path) -> None:
    """A time without its offset would be read in the machine's time zone: refused."""
    version, _, state = rows_of(copy, TRIAL_ID_HEX)[-1]
    document = json.loads(state)
    document["timestamp"]["_data_"] = document["timestamp"]["_data_"].replace("+00:00", "")
    write(copy, TRIAL_ID_HEX, version, json.dumps(document, separators=(",", ":")).encode())
    first = verify_store(str(copy))["problems"][0]
    assert (first["position"], first["kind"]) == (version, "undecodable")
    assert "no UTC offset" in first["detail"]
    with LedgerReader(str(copy)) as reader, pytest.raises(ValueError, match="no UTC offset"):
        list(reader.entries(TRIAL_ID))


# --- the writer keeps a signed log signed ---------------------------------------------------------


def alive_line() -> str:
    """One valid new submission for the built store: subject 01-001 known alive."""
    script = Script(counter=itertools.count(10**6))  # event ids the built store never used
    envelope = script.envelope("subject.alive", "01-001", DAY0 + timedelta(days=60), {})
    return lines([envelope])[0]


def stored_rows(store: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(store)) as con:
        count, last = con.execute("select count(*), max(rowid) from stored_events").fetchone()
    return int(count), int(last)


def test_a_writer_without_the_key_records_nothing_into_a_signed_store(copy: Path) -> None:
    """Neither a rejected line nor an accepted record: the signed log is never continued
    unsigned, so an unsigned checkpoint after signed ones can only be a rewrite."""
    before = stored_rows(copy)
    for line in ("{not json", alive_line()):
        with LedgerService(str(copy)) as service, pytest.raises(SigningKeyRequiredError) as no:
            service.submit_many([line], origin="file:late.jsonl", line_numbers=[1])
        assert "signed (key id" in str(no.value)
    assert stored_rows(copy) == before
    assert verify_store(str(copy), public_keys=TRUSTED)["intact"]


def test_a_deleted_audit_log_is_never_sealed_again_by_the_next_write(copy: Path) -> None:
    """Deleting the seals and editing what they covered, then waiting for the ledger's next
    write to seal it all as 'hashed later': the writer refuses, and verify still says so."""
    edit_dose(copy)
    with closing(sqlite3.connect(copy)) as con:
        con.execute("delete from stored_events where originator_id=?", (AUDIT_HEX,))
        con.commit()
    before = stored_rows(copy)
    with LedgerService(str(copy), signer=SIGNER) as service, pytest.raises(
        UnsealedHistoryError, match="no seal covers"
    ):
        service.submit_many([alive_line()], origin="file:late.jsonl", line_numbers=[1])
    assert stored_rows(copy) == before
    assert "unsealed" in kinds(verify_store(str(copy), public_keys=TRUSTED))


def test_a_row_sqlite_reads_another_subject_in_is_undecodable(copy: Path) -> None:
    """An escaped field name reads the same to Python (so the leaf hash holds) but not to
    SQLite's subject index, which `ledger history` selects by: verify reports the row."""
    version, _, state = next(r for r in rows_of(copy, TRIAL_ID_HEX) if b'"01-003"' in r[2])
    write(copy, TRIAL_ID_HEX, version, state.replace(b'"subject_id"', b'"subject\\u005fid"', 1))
    first = verify_store(str(copy), public_keys=TRUSTED)["problems"][0]
    assert (first["position"], first["kind"]) == (version, "undecodable")
    assert "SQLite reads the row's subject as None" in first["detail"]


def test_a_store_that_ran_unsigned_before_its_key_verifies_against_the_key(
    tmp_path: Path,
) -> None:
    """Unsigned checkpoints before the first signed one are covered by its root: intact, with
    the key named, and a warning that some were unsigned."""
    store = build_store(tmp_path, signer=None)
    with LedgerService(store, signer=SIGNER) as service:
        report_ = service.submit_many([alive_line(), "{not json"], origin="file:late.jsonl",
                                      line_numbers=[1, 2])
    assert report_.accepted == 1
    report = verify_store(store, public_keys=TRUSTED)
    assert report["intact"], report["problems"]
    assert any("unsigned" in warning for warning in report["warnings"])


def test_a_second_signing_key_is_named_in_the_notes(copy: Path) -> None:
    """A batch signed with another key: verify says which keys signed what."""
    other = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35))))
    with LedgerService(str(copy), signer=other) as service:
        service.submit_many(["{not json"], origin="file:late.jsonl", line_numbers=[1])
    notes = verify_store(str(copy))["notes"]
    assert any("signed by 2 keys" in note and other.key_id in note for note in notes), notes


def test_without_a_receipt_the_report_says_what_it_cannot_see(sealed: str) -> None:
    """Truncation after a checkpoint needs a receipt: the report says so until one is given."""
    with LedgerReader(sealed) as reader:
        receipt = reader.latest_checkpoints(TRIAL_ID)["ledger"]
    assert any("no receipt given" in note for note in verify_store(sealed)["notes"])
    assert receipt is not None
    with_receipt = verify_store(sealed, receipts=[receipt])
    assert with_receipt["intact"]
    assert not any("no receipt given" in note for note in with_receipt["notes"])


# --- an archive held to its manifest --------------------------------------------------------------


def archived(store: str, folder: Path) -> Path:
    assert main(["archive", "--store", store, "--out", str(folder)]) == 0
    return folder


def verify_archive(folder: Path) -> tuple[int, dict[str, Any]]:
    from ledger.audit.inspection import read_archive, verify_source

    report = verify_source(read_archive(folder)).to_json_dict()
    return int(not report["intact"]), report


def test_an_archive_cut_short_under_its_own_manifest_is_not_intact(
    sealed: str, tmp_path: Path
) -> None:
    """Its manifest still names the full size and last checkpoint: the cut shows."""
    folder = archived(sealed, tmp_path / "archive")
    assert verify_archive(folder)[1]["intact"]
    checkpoints = [json.loads(line) for line in (folder / "checkpoints.jsonl").read_text()
                   .splitlines()]
    ledger_sizes = [c["size"] for c in checkpoints if c["log"] == LEDGER_LOG]
    keep = ledger_sizes[-3]
    (folder / "checkpoints.jsonl").write_text("".join(
        json.dumps(c, sort_keys=True, separators=(",", ":")) + "\n"
        for c in checkpoints if c["log"] != LEDGER_LOG or c["size"] <= keep
    ))
    lines = (folder / "ledger.jsonl").read_text().splitlines(keepends=True)
    (folder / "ledger.jsonl").write_text("".join(lines[:keep]))
    failed, report = verify_archive(folder)
    assert failed
    details = [p["detail"] for p in report["problems"] if p["kind"] == "manifest_mismatch"]
    assert any("(truncated)" in detail for detail in details), details
    assert any(detail.startswith("ledger.jsonl: its SHA-256") for detail in details)


def test_an_archive_manifest_edited_alone_is_not_intact(sealed: str, tmp_path: Path) -> None:
    """A manifest that no longer describes its files is a finding of its own."""
    folder = archived(sealed, tmp_path / "archive")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["size"] = 5
    (folder / "manifest.json").write_text(json.dumps(manifest))
    failed, report = verify_archive(folder)
    assert failed
    assert kinds(report) == {"manifest_mismatch"}


def test_replay_holds_a_consistently_cut_archive_to_the_receipt(
    sealed: str, tmp_path: Path
) -> None:
    """Cut the archive after an earlier checkpoint and rewrite its manifest to match: nothing
    inside it can tell, so only the auditor's receipt does, for `replay` as for `verify`."""
    receipt = tmp_path / "receipt.json"
    assert main(["checkpoint", "--store", sealed, "--out", str(receipt)]) == 0
    folder = archived(sealed, tmp_path / "archive")
    checkpoints = [json.loads(line) for line in (folder / "checkpoints.jsonl").read_text()
                   .splitlines()]
    kept_checkpoints = [c for c in checkpoints if c["log"] != LEDGER_LOG or c["size"] <= 100]
    last = [c for c in kept_checkpoints if c["log"] == LEDGER_LOG][-1]
    files = {
        "checkpoints.jsonl": "".join(json.dumps(c, sort_keys=True, separators=(",", ":")) + "\n"
                                     for c in kept_checkpoints),
        "ledger.jsonl": "".join((folder / "ledger.jsonl").read_text()
                                .splitlines(keepends=True)[: last["size"]]),
    }
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, text in files.items():
        (folder / name).write_text(text)
        manifest["files"][name] = hashlib.sha256(text.encode()).hexdigest()
    manifest.update(size=last["size"], checkpoint=last)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert verify_archive(folder)[1]["intact"]  # nothing inside the archive says otherwise
    out = tmp_path / "replayed"
    assert main(["replay", str(folder), "--out", str(out)]) == 0
    refused = main(["replay", str(folder), "--checkpoint", str(receipt), "--out",
                    str(tmp_path / "refused")])
    assert refused == EXIT_REJECTED
    assert not (tmp_path / "refused" / "manifest.json").exists()


def test_an_archive_of_a_ledger_that_never_signed_verifies(tmp_path: Path) -> None:
    """Its key file is empty: nothing to check signatures with, which verify warns about."""
    store = build_store(tmp_path, signer=None)
    failed, report = verify_archive(archived(store, tmp_path / "archive"))
    assert not failed, report["problems"]
    assert any("unsigned" in warning for warning in report["warnings"])


def test_a_writer_holding_an_older_audit_log_records_after_another_writer(
    tmp_path: Path,
) -> None:
    """Two writers of one store: the second read the audit logs (checking for a key) before the
    first sealed a batch. What it holds covers less than the store's entries; that is staleness,
    not a gap to refuse: it reads the log again and records, each batch sealed once."""
    store = build_store(tmp_path, signer=None)
    with LedgerService(store) as second:
        second.check_signing_key()  # a writer without a key reads (and holds) the audit logs
        with LedgerService(store) as first:
            assert first.submit_many([alive_line()]).accepted == 1
        late = Script(counter=itertools.count(2 * 10**6)).envelope(
            "subject.alive", "01-002", DAY0 + timedelta(days=61), {}
        )
        assert second.submit_many(lines([late])).accepted == 1
    report = verify_store(store)
    assert report["intact"], report["problems"]


def delete_first_row(store: Path, originator_hex: str) -> None:
    with closing(sqlite3.connect(store)) as con:
        con.execute("delete from stored_events where originator_id=? and originator_version=1",
                    (originator_hex,))
        con.commit()


def test_a_trial_whose_opened_row_was_deleted_is_verified_not_lost(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trials were found by their `trial.opened` rows alone: with it deleted, `verify` said
    "holds no trial yet" (exit 2). The trial's audit log names it too: verify reads the trial
    and finds position 1 missing (exit 1)."""
    delete_first_row(copy, TRIAL_ID_HEX)
    assert main(["verify", "--store", str(copy), "--json"]) == EXIT_REJECTED
    report = json.loads(capsys.readouterr().out)
    assert report["trial_id"] == TRIAL_ID
    assert {"kind": "missing", "log": "ledger", "position": 1,
            "detail": "positions 1..1 absent"} in report["problems"]


def test_a_second_trial_whose_opened_row_was_deleted_is_not_passed_over(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two trials in a store, the second's `trial.opened` deleted: `verify` without `--trial`
    said INTACT of the first alone (the second had vanished from the store's trials). It asks
    which trial, naming both; the second, named, is not intact."""
    from ledger.aggregates.trial_topics import trial_aggregate_id
    from ledger.protocol_files import bundled_protocol

    other = "NCT09999999"
    protocol = bundled_protocol()
    with LedgerService(str(copy), signer=SIGNER) as service:
        service.open_trial(
            type(protocol).from_mapping({**protocol.to_mapping(), "trial_id": other})
        )
    delete_first_row(copy, trial_aggregate_id(other).hex)
    assert main(["verify", "--store", str(copy)]) == 2
    assert f"holds several trials ({TRIAL_ID}, {other}): name one" in capsys.readouterr().err
    assert main(["verify", "--store", str(copy), "--trial", other]) == EXIT_REJECTED
    assert "missing" in capsys.readouterr().out


def test_a_receipt_of_another_trial_is_bad_input(
    sealed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receipt of trial B given to verify trial A was reported as A's ledger being
    inconsistent with its checkpoint (exit 1): it is the wrong receipt (exit 2, one line). A
    receipt without `--trial` chooses the trial verified: a store holding nothing of the trial
    it names has lost what it proves (exit 1), whether erased or never there."""
    receipt = tmp_path / "receipt.json"
    assert main(["checkpoint", "--store", sealed, "--out", str(receipt)]) == 0
    document = json.loads(receipt.read_text())
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({
        log: None if c is None else {**c, "trial_id": "NCT09999999"} for log, c in document.items()
    }))
    capsys.readouterr()
    assert main(["verify", "--store", sealed, "--checkpoint", str(foreign)]) == EXIT_REJECTED
    out = capsys.readouterr().out
    assert "trial NCT09999999" in out and "inconsistent_with_checkpoint" in out
    assert f"a receipt covers {document['ledger']['size']} entries; the log holds 0" in out
    argv = ["verify", "--store", sealed, "--trial", TRIAL_ID, "--checkpoint", str(foreign)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("ledger verify: error: the receipts are checkpoints of trial NCT09999999, "
                   f"not of --trial {TRIAL_ID}\n")
    assert main(["verify", "--store", sealed, "--checkpoint", str(receipt)]) == 0


def insert_row(store: Path, originator_hex: str, version: int, topic: str, state: bytes) -> None:
    with closing(sqlite3.connect(store)) as con:
        con.execute("insert into stored_events values (?, ?, ?, ?)",
                    (originator_hex, version, topic, state))
        con.commit()


FORGED_TIME = b'{"_type_":"datetime_iso","_data_":"2026-12-03T07:03:21.810412+00:00"}'


@pytest.mark.parametrize(
    ("topic", "state"),
    [
        pytest.param(
            "trial-ledger:AuditLog.Started",
            b'{"timestamp":' + FORGED_TIME + b',"originator_topic":"trial-ledger:AuditLog",'
            b'"log":"ledger","trial_id":"NCT0FAKE"}',
            id="an audit log's start",
        ),
        pytest.param(
            "trial-ledger:Trial.Opened",
            b'{"timestamp":' + FORGED_TIME + b',"originator_topic":"trial-ledger:Trial",'
            b'"data":{"protocol":{"trial_id":"NCT0FAKE"}}}',
            id="a trial.opened",
        ),
    ],
)
def test_a_first_row_stored_beside_the_logs_names_no_trial(
    copy: Path, topic: str, state: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row naming trial NCT0FAKE at an aggregate id that is not that trial's (its Trial's, or
    its ledger's audit log's): reads, `ingest` and the outbox (which take the store's trials)
    asked "name one" or stopped at "no trial NCT0FAKE". It names nothing."""
    insert_row(copy, "00000000000000000000000000000abc", 1, topic, state)
    with LedgerReader(str(copy)) as reader:
        assert reader.trial_ids() == [TRIAL_ID]
    assert main(["cohorts", "--store", str(copy)]) == 0
    key = copy.parent / "public-key.pem"
    key.write_text(SIGNER.public_key_pem, encoding="ascii")
    assert main(["verify", "--store", str(copy), "--public-key", str(key)]) == 0


@pytest.mark.parametrize(
    "state",
    [pytest.param(b"{no", id="not JSON"),
     pytest.param(b'{"log":"ledger","trial_id":5}', id="another trial's name")],
)
def test_a_damaged_audit_log_start_is_a_finding_not_bad_input(
    copy: Path, state: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trial's own audit-log start row rewritten: `verify` said "bad input" (exit 2, the
    JSON error) or "several trials", and `cohorts` failed likewise. The trial is still found
    by its `trial.opened`; verify reports the damaged log (exit 1) and reads go on."""
    write(copy, AUDIT_HEX, 1, state)
    assert main(["verify", "--store", str(copy)]) == EXIT_REJECTED
    assert "NOT INTACT" in capsys.readouterr().out
    assert main(["cohorts", "--store", str(copy)]) == 0


REJECTION_HEX = "cb98678c0d40548e9e8a579f42ee432c"  # rejection_log_id().hex


@pytest.mark.parametrize(
    ("log", "version"),
    [
        pytest.param("ledger", "last + 1", id="a trial row after the last sealed one"),
        pytest.param("rejections", 2.5, id="a rejection between two"),
        pytest.param("rejections", "x", id="a rejection at a text version"),
        pytest.param("rejections", -1, id="a rejection below position 1"),
        pytest.param("ledger", 0, id="a trial row at position 0"),
    ],
)
def test_an_archive_of_a_store_that_is_not_intact_is_refused(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], log: str, version: object
) -> None:
    """An archive keeps decoded records at positions only: a row stored beside the log was left
    out (or cut off with the unsealed tail) and the archive verified INTACT; a text version
    failed it with a TypeError (exit 3). Archive refuses a store verify finds not intact (exit
    1, one line), writing nothing."""
    from ledger.aggregates.log_ids import rejection_log_id

    assert rejection_log_id().hex == REJECTION_HEX
    originator = TRIAL_ID_HEX if log == "ledger" else REJECTION_HEX
    rows = rows_of(copy, originator)
    last, topic, state = rows[-1]
    insert_row(copy, originator, last + 1 if version == "last + 1" else version, topic, state)
    assert main(["verify", "--store", str(copy)]) == EXIT_REJECTED
    capsys.readouterr()
    archive = tmp_path / "archive"
    assert main(["archive", "--store", str(copy), "--out", str(archive)]) == EXIT_REJECTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is NOT INTACT" in err and "none is written" in err
    assert not archive.exists()


@pytest.mark.parametrize(
    "version",
    [pytest.param(2**62 + 1, id="above 2^62"), pytest.param(1e300, id="a huge real"),
     pytest.param("x", id="text"), pytest.param(b"\x01", id="a blob"),
     pytest.param(100.5, id="between two positions")],
)
def test_a_row_at_a_version_that_is_no_position_is_found_and_never_read(
    copy: Path, version: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged dlt_window.closed inserted at a version no read takes as a position (SQLite
    stores whatever it is given): cohorts read the one above 2^62 as the ledger's last position
    and verify, which read up to 2^62, said INTACT; text and blob versions made history and
    export fail with a TypeError. Every read skips them; verify reports them `inserted`."""
    rows = rows_of(copy, TRIAL_ID_HEX)
    before = [main(["cohorts", "--store", str(copy), "--json"]), capsys.readouterr().out]
    _, topic, state = next(r for r in rows if r[1].endswith("DltWindowClosed"))
    insert_row(copy, TRIAL_ID_HEX, version, topic, state)  # type: ignore[arg-type]
    assert [main(["cohorts", "--store", str(copy), "--json"]), capsys.readouterr().out] == before
    assert main(["history", "01-001", "--store", str(copy)]) == 0
    capsys.readouterr()
    assert main(["verify", "--store", str(copy), "--json"]) == EXIT_REJECTED
    report = json.loads(capsys.readouterr().out)
    assert any(p["kind"] == "inserted" and "version(s)" in p["detail"]
               for p in report["problems"])


def test_a_deleted_rejection_is_missing_and_the_others_still_match(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first rejection's row deleted: it is `missing` at 1 and nothing else is wrong. (The
    rest were read again from after how many were read rather than the last number read, so
    rejection 2 was read twice and reported `inserted`; and each was held to the leaf hash of
    its place in the list read, not of its own number.)"""
    from ledger.aggregates.log_ids import rejection_log_id

    with closing(sqlite3.connect(copy)) as con:
        con.execute("delete from stored_events where originator_id=? and originator_version=2",
                    (rejection_log_id().hex,))
        con.commit()
    assert main(["verify", "--store", str(copy), "--json"]) == EXIT_REJECTED
    report = json.loads(capsys.readouterr().out)
    assert report["logs"]["rejections"]["size"] == 1
    assert [(p["kind"], p["position"]) for p in report["problems"] if p["log"] == "rejections"] == [
        ("missing", 1), ("missing", 2)]


def test_a_subject_index_rewritten_to_hide_a_subject_is_undecodable(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The subject index rebuilt to read 01-001 as 01-00X, its declared SQL put back (SQLite's
    writable schema): `history 01-001` finds nothing. Verify, reading the subject through the
    index, says the index reads the rows differently. (Reading it with a version range made
    SQLite compute the subject from the rows instead, and verify said INTACT.)"""
    with closing(sqlite3.connect(copy)) as con:
        (declared,) = con.execute(
            "select sql from sqlite_master where name='stored_events_subject'").fetchone()
        forged = declared.replace("'$.subject_id')", "'$.subject_id'), '01-001', '01-00X')")
        forged = forged.replace("THEN json_extract", "THEN replace(json_extract", 1)
        con.executescript(
            "DROP INDEX stored_events_subject;" + forged + ";PRAGMA writable_schema=ON;")
        con.execute("UPDATE sqlite_master SET sql=? WHERE name='stored_events_subject'",
                    (declared,))
        con.commit()
    assert main(["history", "01-001", "--store", str(copy)]) == 2  # what the forgery does
    capsys.readouterr()
    assert main(["verify", "--store", str(copy), "--json"]) == EXIT_REJECTED
    report = json.loads(capsys.readouterr().out)
    assert any(p["kind"] == "undecodable" and "SQLite reads the row's subject as '01-00X'"
               in p["detail"] for p in report["problems"])


def test_an_audit_log_of_a_trial_with_no_records_names_no_trial(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An audit-log start row for trial NCT0FAKE at that log's own uuid5 id, and no record of
    the trial: every default read asked "which trial?" and the outbox stopped at "no trial
    NCT0FAKE". A trial is named by its audit log only while it has records."""
    fake = audit_log_id(LEDGER_LOG, "NCT0FAKE").hex
    (_, topic, state) = rows_of(copy, AUDIT_HEX)[0]
    insert_row(copy, fake, 1, topic, state.replace(TRIAL_ID.encode(), b"NCT0FAKE"))
    with LedgerReader(str(copy)) as reader:
        assert reader.trial_ids() == [TRIAL_ID]
    assert main(["cohorts", "--store", str(copy)]) == 0


def test_a_type_index_rewritten_to_hide_decisions_is_undecodable(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The type index rebuilt to file closed DLT windows and closed cohorts under another name,
    its declared SQL put back: `ledger cohorts`, which selects through it, showed the cohorts
    open with nobody evaluable, and verify said INTACT. Verify holds every row to what the
    index files it under."""
    before = [main(["cohorts", "--store", str(copy), "--json"]), capsys.readouterr().out]
    hidden = ("'trial-ledger:Trial.DltWindowClosed','trial-ledger:Trial.CohortClosed'")
    with closing(sqlite3.connect(copy)) as con:
        (declared,) = con.execute(
            "select sql from sqlite_master where name='stored_events_type'").fetchone()
        con.executescript(
            "DROP INDEX stored_events_type;"
            "CREATE INDEX stored_events_type ON stored_events (originator_id, CASE WHEN topic IN "
            f"({hidden}) THEN 'hidden' ELSE topic END);PRAGMA writable_schema=ON;")
        con.execute("UPDATE sqlite_master SET sql=? WHERE name='stored_events_type'", (declared,))
        con.commit()
    after = [main(["cohorts", "--store", str(copy), "--json"]), capsys.readouterr().out]
    assert after != before  # what the forgery does to the reads
    assert main(["verify", "--store", str(copy), "--json"]) == EXIT_REJECTED
    report = json.loads(capsys.readouterr().out)
    assert any(p["kind"] == "undecodable" and "type index files the row under None" in p["detail"]
               for p in report["problems"])
