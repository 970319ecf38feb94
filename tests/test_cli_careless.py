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
from contextlib import closing
from pathlib import Path

import pytest

from ledger.application import LedgerService
from ledger.cli import EXIT_BAD_INPUT, EXIT_REJECTED, INCOMPLETE_MARKER, _parser, main
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
