"""Careless use gets one line and safety (issue "Defend ... every input", item 7): reads never
create or change a store, the demo never replaces a store it did not make, every line of a file is
accounted for, pipes closing early are quiet, passwords stay off the command line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import pytest

from ledger.application import LedgerService
from ledger.cli import _parser, main
from ledger.cli_plumbing import EXIT_BAD_INPUT, EXIT_REJECTED, INCOMPLETE_MARKER
from ledger.demo import DEMO_END, EXPANSION_ARRIVALS_PER_DAY, MAX_SUBJECTS, expansion_arrivals
from tests.builders import FixedClock, Script, lines
from tests.test_audit import DAY0, build_store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("careless"))


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["cohorts"], id="cohorts"),
        pytest.param(["history", "01-001"], id="history"),
        pytest.param(["verify"], id="verify"),
        pytest.param(["checkpoint"], id="checkpoint"),
        pytest.param(["diff", "--from", "2026-01-01", "--to", "2026-02-01"], id="diff"),
    ],
)
def test_a_read_of_a_missing_store_creates_nothing(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No store there: one line naming the path, exit 2, and no empty store left behind."""
    missing = tmp_path / "ledger.db"
    code, _, err = run(capsys, *argv, "--store", str(missing))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and str(missing) in err
    assert not missing.exists()


def test_reads_never_write_to_the_store(store: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Every read command leaves the store's bytes exactly as they were (opened read-only)."""
    copy = tmp_path / "copy.db"
    shutil.copy(store, copy)
    before = copy.read_bytes()
    for argv in (["cohorts"], ["history", "01-001"], ["verify"], ["checkpoint"],
                 ["export", "--out", str(tmp_path / "e")]):
        code, _, err = run(capsys, *argv, "--store", str(copy))
        assert code == 0, (argv, err)
    assert copy.read_bytes() == before


def test_an_empty_store_is_named_in_the_message(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A store with no trial: the message says which store was looked at."""
    path = tmp_path / "empty.db"
    with closing(sqlite3.connect(path)):
        pass
    LedgerService(str(path)).close()
    code, _, err = run(capsys, "cohorts", "--store", str(path))
    assert code == EXIT_BAD_INPUT and str(path) in err and "no trial" in err


def test_the_demo_refuses_to_replace_a_store_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --out DIR` with someone's DIR/ledger.db: refused, the store untouched."""
    out = tmp_path / "theirs"
    out.mkdir()
    precious = Path(build_store(out))
    before = precious.read_bytes()
    code, _, err = run(capsys, "demo", "--out", str(out))
    assert code == EXIT_BAD_INPUT and "not made by `ledger demo`" in err
    assert precious.read_bytes() == before


def test_a_demo_over_its_size_bound_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --subjects` one over MAX_SUBJECTS (a typo's extra zero): one line, no folder."""
    out = tmp_path / "big"
    code, _, err = run(capsys, "demo", "--subjects", str(MAX_SUBJECTS + 1), "--out", str(out))
    assert code == EXIT_BAD_INPUT
    assert err.strip() == (
        f"ledger demo: error: --subjects {MAX_SUBJECTS + 1} is more than the demo makes "
        "(20,000; about a minute per thousand subjects)"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("remaining", "today", "arrivals"),
    [
        pytest.param(1, DEMO_END, 1, id="the last one"),
        pytest.param(3, DEMO_END - timedelta(days=9), 3, id="fewer than a day's pace"),
        pytest.param(979, date(2024, 10, 6), EXPANSION_ARRIVALS_PER_DAY, id="fits at the pace"),
        pytest.param(10, DEMO_END - timedelta(days=1), 5, id="two days for ten"),
        pytest.param(11, DEMO_END - timedelta(days=1), 6, id="the first day takes the odd one"),
        pytest.param(4_000, DEMO_END - timedelta(days=999), EXPANSION_ARRIVALS_PER_DAY,
                     id="exactly at the pace"),
        pytest.param(4_001, DEMO_END - timedelta(days=999), 5, id="one over the pace"),
    ],
)
def test_the_enlarged_expansion_enrolls_everyone_by_the_last_day(
    remaining: int, today: date, arrivals: int
) -> None:
    """`demo --subjects N` enrolls N when an MTD is declared: four a day, more when four would
    not all arrive by DEMO_END (it enrolled fewer than asked, saying nothing, at N ≳ 2,500)."""
    assert expansion_arrivals(remaining, today) == arrivals
    # Walked to the end at that rule, everyone remaining enrolls by DEMO_END, none after.
    day, left = today, remaining
    while left:
        assert day <= DEMO_END
        left -= expansion_arrivals(left, day)
        day += timedelta(days=1)


def test_an_interrupted_command_marks_its_folder_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C half-way through the demo leaves INCOMPLETE beside the partial files."""
    import ledger.demo

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ledger.demo, "run_demo", interrupted)
    code, _, _ = run(capsys, "demo", "--out", str(tmp_path / "d"))
    assert code == 130
    assert "stopped before finishing" in (tmp_path / "d" / INCOMPLETE_MARKER).read_text()


@pytest.mark.parametrize("command", ["submit", "publish"])
@pytest.mark.parametrize("what", ["missing", "a folder"])
def test_a_submissions_file_that_is_not_there_is_bad_input(
    command: str, what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`publish` of a missing file was exit 3 ("failed: FileNotFoundError"), `submit` exit 2;
    both say it in one line, before any store is made or broker dialled (a closed port)."""
    path = tmp_path / "submissions.jsonl"
    if what == "a folder":
        path.mkdir()
    where = ["--bootstrap", "127.0.0.1:1"] if command == "publish" else [
        "--store", str(tmp_path / "ledger.db")]
    code, _, err = run(capsys, command, str(path), *where)
    assert code == EXIT_BAD_INPUT
    assert err == f"ledger {command}: error: {path}: no such file\n"
    assert not (tmp_path / "ledger.db").exists()


def test_a_finished_rerun_clears_its_own_incomplete_mark(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Export stopped after its datasets, before define.xml: INCOMPLETE. The same export run
    again finishes and the mark goes (it stayed beside the complete files); a mark left by
    another command (report) stays, since its files are still partial."""
    import ledger.projections.export
    import ledger.projections.report

    def interrupted(*_: object, **__: object) -> bytes:
        raise KeyboardInterrupt

    out = tmp_path / "out"
    with monkeypatch.context() as patched:
        patched.setattr(ledger.projections.export, "define_xml", interrupted)
        assert run(capsys, "export", "--store", store, "--out", str(out))[0] == 130
    marker = out / INCOMPLETE_MARKER
    command = f"`ledger export --store {store} --out {out}` stopped before finishing"
    assert marker.read_text().startswith(command)
    # Run with other options (another format), the stopped run's files stay beside the new
    # ones, unlisted in its manifest: the mark stays too.
    assert run(capsys, "export", "--store", store, "--format", "json", "--out", str(out))[0] == 0
    assert marker.read_text().startswith(command)
    assert run(capsys, "export", "--store", store, "--out", str(out))[0] == 0
    assert not marker.exists() and (out / "define.xml").exists()

    with monkeypatch.context() as patched:
        patched.setattr(ledger.projections.report, "write_report", interrupted)
        patched.setattr("ledger.commands.provenance_of", lambda *_: (out / "x").write_text("x"))
        assert run(capsys, "report", "--store", store, "--out", str(out))[0] == 130
    assert run(capsys, "export", "--store", store, "--out", str(out))[0] == 0
    assert marker.read_text().startswith(f"`ledger report --store {store} --out {out}` stopped")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["export", "--cutoff", "yesterday", "--out", "x"], id="a bad --cutoff"),
        pytest.param(["export", "--format", "XPT", "--out", "x"], id="a format not offered"),
        pytest.param(["export"], id="a missing --out"),
        pytest.param(["diff", "--from", "2026-01-01"], id="a missing --to"),
        pytest.param(
            ["simulate", "--true-dlt", "0.1,0.2,0.3", "--runs", "many"], id="not a number"
        ),
        pytest.param(["frobnicate"], id="an unknown command"),
        pytest.param([], id="no command"),
    ],
)
def test_a_bad_argument_is_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """argparse's own refusals are one line and exit 2 like every other bad input (they
    printed the whole usage block first), naming the help that shows the usage."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "error: " in err and "--help`)" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["export", "report", "archive", "replay", "demo", "checkpoint"])
def test_an_empty_out_is_refused(
    command: str, store: str, archive: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--out ""` (an unset `$OUT`) named the current folder, and the command wrote its files
    over whatever was there: one line, exit 2, the folder untouched."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adsl.csv").write_text("mine\n")
    source = [str(archive)] if command == "replay" else []
    store_option = [] if command == "demo" else ["--store", store]
    with pytest.raises(SystemExit) as stopped:
        main([command, *source, *store_option, "--out", ""])
    err = capsys.readouterr().err
    assert stopped.value.code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "--out: an empty path" in err
    assert [p.name for p in tmp_path.iterdir()] == ["adsl.csv"]
    assert (tmp_path / "adsl.csv").read_text() == "mine\n"


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder no file can be made in, by this user: read-only by mode, or (root ignores the
    mode) immutable by `chattr +i`."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    immutable = subprocess.run(["chattr", "+i", str(folder)], check=False, capture_output=True)
    if immutable.returncode != 0:
        pytest.skip("root, and this file system cannot make a folder immutable (chattr +i)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("inside", [False, True], ids=["the folder", "a new folder in it"])
@pytest.mark.parametrize("command", ["export", "report", "archive", "replay", "demo"])
def test_an_output_folder_that_cannot_be_written_is_bad_input(
    command: str, inside: bool, store: str, archive: Path, unwritable_folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--out` in a folder the user cannot write: one line naming it, exit 2 (was exit 3,
    "failed: PermissionError", as if the ledger had failed)."""
    out = unwritable_folder / "new" if inside else unwritable_folder
    source = [str(archive)] if command == "replay" else []
    store_option = [] if command == "demo" else ["--store", store]
    code, _, err = run(capsys, command, *source, *store_option, "--out", str(out))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and f"--out {out} cannot be written" in err
    assert list(unwritable_folder.iterdir()) == []


def test_every_line_of_a_file_is_accounted_for(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Blank, whitespace-only and broken lines are rejections with their line numbers, kept in
    the rejection log: lines = accepted + duplicates + rejected."""
    script = Script()
    good = lines([script.enroll("01-001", "A", DAY0)])
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([good[0], "", "   ", "{broken", good[0]]) + "\n")
    store = str(tmp_path / "l.db")
    code, out, _ = run(capsys, "submit", str(path), "--store", store, "--json")
    report = json.loads(out)
    assert code == EXIT_REJECTED
    assert report["lines"] == 5
    assert (report["accepted"], report["duplicates"]) == (1, 1)
    assert [r["line"] for r in report["rejected"]] == [2, 3, 4]
    with LedgerService(store) as service:
        kept = list(service.rejections())
    assert [(r["topic"], r["offset"]) for r in kept] == [("file:in.jsonl", n) for n in (2, 3, 4)]


def test_two_submits_on_one_store_both_record(tmp_path: Path) -> None:
    """Two `ledger submit` at once on one SQLite store: both finish, everything recorded once."""
    script = Script()
    subjects = {n: script.subject(f"01-{n:03d}", "A", DAY0) for n in range(1, 4)}
    envelopes = [e for course in subjects.values() for e in course]
    files = []
    for name, part in (("a", subjects[1] + subjects[3]), ("b", subjects[2])):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(lines(part)) + "\n")
        files.append(path)
    store = str(tmp_path / "shared.db")
    LedgerService(store, clock=FixedClock()).ensure_trial()
    env = {**os.environ, "LEDGER_STORE": store}
    procs = [subprocess.Popen([sys.executable, "-m", "ledger.cli", "submit", str(f)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    with LedgerService(store) as service:
        recorded = {e.event_id for e in service.entries("NCT05406206") if e.event_id}
    assert recorded >= {e["event_id"] for e in envelopes}


def test_a_pipe_closed_early_is_quiet(store: str) -> None:
    """`ledger history ... | head -1`: no broken-pipe error, no traceback."""
    command = (f"{sys.executable} -m ledger.cli history 01-001 --store {store} | head -1")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
    assert result.stdout.startswith("audit trail of")
    assert result.stderr == ""


def test_a_password_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A postgresql:// URL with a password in --store: refused before connecting, one line."""
    code, _, err = run(capsys, "cohorts", "--store", "postgresql://u:secret@127.0.0.1:1/db")
    assert code == EXIT_BAD_INPUT and "PGPASSWORD" in err and "secret" not in err


def test_every_option_has_help_and_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints the installed version; no option or argument lacks help text."""
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("ledger ")
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.dest}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if action.help is None and not isinstance(action, argparse._HelpAction)
    ]
    assert missing == []


def test_an_ingest_batch_of_nothing_is_refused_before_anything_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--max-batch 0` is one line and exit 2; no store is made and no broker is dialled (the
    address is a closed port: a connection attempt would fail differently)."""
    store = tmp_path / "ledger.db"
    code, _, err = run(capsys, "ingest", "--bootstrap", "127.0.0.1:1", "--max-batch", "0",
                       "--store", str(store))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "max_batch must be at least 1" in err
    assert not store.exists()


@pytest.fixture(scope="module")
def archive(store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("careless-archive") / "archive"
    assert main(["archive", "--store", store, "--out", str(folder)]) == 0
    return folder


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", ["verify", "checkpoint", "archive"])
def test_a_trial_the_store_does_not_hold_is_refused(
    command: str, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--trial NCT0` on a store without it: one line naming it, exit 2 (verify used to say
    INTACT, 0 entries)."""
    out = ["--out", str(tmp_path / "a")] if command == "archive" else []
    code, _, err = run(capsys, command, "--store", store, "--trial", "NCT0", *out)
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "no trial NCT0" in err


@pytest.mark.parametrize("inside", ["", "datasets"])
def test_replay_refuses_to_write_into_its_archive(
    inside: str, archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay ARCHIVE --out ARCHIVE[/sub]` would replace the archive's manifest.json with the
    datasets': refused, the archive byte for byte as it was, no INCOMPLETE in it."""
    before = folder_bytes(archive)
    code, _, err = run(capsys, "replay", str(archive), "--out", str(archive / inside))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "inside the archive it replays" in err
    assert folder_bytes(archive) == before


@pytest.mark.parametrize("as_of", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_an_as_of_beyond_the_calendar_is_bad_input(
    as_of: str, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An offset that moves the instant past year 9999 or before year 1 in UTC: one line."""
    code, _, err = run(capsys, "cohorts", "--store", store, "--as-of", as_of)
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "out of range" in err and as_of in err


@pytest.mark.parametrize("argv", [["cohorts"], ["history", "01-001"], ["export"], ["archive"]])
def test_an_empty_as_of_is_refused(
    argv: list[str], store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--as-of ""` is a malformed instant, not "the latest"; nothing is written."""
    out = ["--out", str(tmp_path / "out")] if argv[0] in ("export", "archive") else []
    code, _, err = run(capsys, *argv, *out, "--store", store, "--as-of", "")
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "is not an ISO-8601 timestamp" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["export", "report", "archive", "replay", "demo"])
def test_a_file_given_as_the_output_folder_is_refused(
    command: str, store: str, archive: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--out` naming an existing file: one line, exit 2, the file untouched."""
    kept = tmp_path / "notes.txt"
    kept.write_text("mine\n")
    source = [str(archive)] if command == "replay" else []
    store_option = [] if command == "demo" else ["--store", store]
    code, _, err = run(capsys, command, *source, *store_option, "--out", str(kept))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and f"--out {kept} is a file" in err
    assert kept.read_text() == "mine\n"


@pytest.mark.parametrize("command", ["cohorts", "verify", "checkpoint"])
@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_a_file_that_is_not_a_ledger_store_is_bad_input(
    kind: str, command: str, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zero-byte file, a text file or a cut SQLite file as --store: not a store at all, so bad
    input (verify too: there is no ledger to call intact or not), one line naming it."""
    path = tmp_path / "not-a-store.db"
    contents = {"empty": b"", "text": b"hello\n", "truncated": Path(store).read_bytes()[:5000]}
    path.write_bytes(contents[kind])
    code, _, err = run(capsys, command, "--store", str(path))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and f"not a ledger store: {path}" in err
    assert path.read_bytes() == contents[kind]


def test_checkpoint_never_overwrites_a_kept_receipt(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The receipt an auditor keeps is refused as --out, one line naming it; a new file is
    written; a folder is refused too."""
    receipt = tmp_path / "receipt.json"
    receipt.write_text("kept\n")
    code, _, err = run(capsys, "checkpoint", "--store", store, "--out", str(receipt))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and f"{receipt} already exists" in err
    assert receipt.read_text() == "kept\n"
    fresh = tmp_path / "fresh.json"
    assert run(capsys, "checkpoint", "--store", store, "--out", str(fresh))[0] == 0
    assert json.loads(fresh.read_text())["ledger"]["log"] == "ledger"
    code, _, err = run(capsys, "checkpoint", "--store", store, "--out", str(tmp_path))
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1 and "is a folder" in err


def test_a_refused_command_marks_nothing_incomplete(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """INCOMPLETE goes only where the command itself wrote: an archive refused for a non-empty
    folder, a demo refused for someone's store and `checkpoint --out .` (the working folder)
    leave those folders exactly as they were."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("mine\n")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    build_store(theirs)
    work = tmp_path / "work"
    work.mkdir()
    before = {folder: folder_bytes(folder) for folder in (notes, theirs, work)}
    assert run(capsys, "archive", "--store", store, "--out", str(notes))[0] == EXIT_BAD_INPUT
    assert run(capsys, "demo", "--out", str(theirs))[0] == EXIT_BAD_INPUT
    monkeypatch.chdir(work)
    assert run(capsys, "checkpoint", "--store", store, "--out", ".")[0] == EXIT_BAD_INPUT
    assert {folder: folder_bytes(folder) for folder in before} == before


@pytest.mark.parametrize(
    "other", [["--archive", "ARCHIVE"], ["--bootstrap", "127.0.0.1:1"]], ids=["archive", "topics"]
)
def test_verify_refuses_two_sources(
    other: list[str], store: str, archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify --store S --archive D` used to verify D and ignore S: refused, one line. (The
    closed port shows nothing is dialled.)"""
    argv = [str(archive) if part == "ARCHIVE" else part for part in other]
    code, _, err = run(capsys, "verify", "--store", store, *argv)
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "verify one source at a time" in err


def test_verify_of_an_archive_is_not_refused_for_the_default_store(
    store: str, archive: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LEDGER_STORE is a default, not a second source: `verify --archive D` verifies D."""
    monkeypatch.setenv("LEDGER_STORE", store)
    code, out, _ = run(capsys, "verify", "--archive", str(archive))
    assert code == 0 and out.startswith(f"INTACT: archive {archive}")


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", "3682"), ("size", -1), ("size", True), ("root", "not hex"), ("root", None)],
)
def test_a_receipt_with_a_malformed_field_is_bad_input(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object
) -> None:
    """A receipt whose size or root is not what a checkpoint holds: exit 2, one line."""
    receipt = tmp_path / "receipt.json"
    assert main(["checkpoint", "--store", store, "--out", str(receipt)]) == 0
    document = json.loads(receipt.read_text())
    document["ledger"][field] = value
    receipt.write_text(json.dumps(document))
    capsys.readouterr()
    code, _, err = run(capsys, "verify", "--store", store, "--checkpoint", str(receipt))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and f"checkpoint's {field} is" in err


def test_an_archive_as_of_before_any_checkpoint_is_refused(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing sealed by then: refused, rather than an empty archive."""
    out = tmp_path / "archive"
    code, _, err = run(capsys, "archive", "--store", store, "--as-of", "1900-01-01T00:00:00Z",
                       "--out", str(out))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "nothing to archive" in err
    assert not out.exists() or not any(out.iterdir())


def test_a_lost_write_race_is_retried_in_words(caplog: pytest.LogCaptureFixture) -> None:
    """Two writers racing: the retry is one readable line, not stamina's bare event name."""
    from eventsourcing.persistence import IntegrityError

    from ledger.recording import lost_write_race_retries

    tries = 0
    with caplog.at_level("WARNING"):
        for attempt in lost_write_race_retries():
            with attempt:
                tries += 1
                if tries == 1:
                    raise IntegrityError("UNIQUE constraint failed:\n stored_events")
    assert tries == 2
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and "stamina" not in said[0]
    assert said[0].startswith("IntegrityError: UNIQUE constraint failed: stored_events; "
                              "trying again in ")


def test_submit_without_the_key_of_a_signed_store_is_one_line_and_records_nothing(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any line is read into the store, without advice to resubmit."""
    copy = tmp_path / "ledger.db"
    shutil.copy(store, copy)
    before = copy.read_bytes()
    submissions = tmp_path / "late.jsonl"
    submissions.write_text("{not json\n")
    code, _, err = run(capsys, "submit", str(submissions), "--store", str(copy))
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "checkpoints are signed (key id" in err
    assert copy.read_bytes() == before
