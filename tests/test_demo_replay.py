"""The demo's files rebuild the demo's ledger: the commands it prints, run on a fresh store, give
the same records, decisions, cohort table and datasets (only the recorded times differ)."""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ledger.cli import main
from ledger.demo import replay_commands, run_demo
from ledger.ledger_reader import LedgerReader
from ledger.protocol_files import bundled_protocol, load_protocol

DATASETS = ("adsl.csv", "adtte.csv", "adrs.csv", "adae.csv")
# What a replay records differently: when (and so each entry's leaf hash), and for the opening,
# who opened the trial and why (the operator replaying, not the demo).
TIMELESS = ("recorded_at", "leaf_hash")
OPENING_ONLY = ("entered_by", "reason")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def replay(
    capsys: pytest.CaptureFixture[str], commands: list[str]
) -> dict[str, Any]:
    """Run the printed commands as given (in the current folder); the submit report."""
    assert [shlex.split(c)[:2] for c in commands] == [
        ["ledger", "init"],
        ["ledger", "submit"],
        ["ledger", "export"],
    ]
    report: dict[str, Any] = {}
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv[0] == "submit":
            argv.append("--json")
        code, out, err = run(capsys, *argv)
        if argv[0] == "submit":
            report = json.loads(out)
            assert code in (0, 1), err
        else:
            assert code == 0, err
    return report


def content(store: str) -> list[dict[str, Any]]:
    """The store's trial records without what a replay records differently."""
    with LedgerReader(store) as ledger:
        entries = [e.to_json_dict() for e in ledger.entries(ledger.default_trial_id())]
    for entry in entries:
        for key in TIMELESS + (OPENING_ONLY if entry["type"] == "trial.opened" else ()):
            entry.pop(key, None)
    return entries


def kept_rejections(store: str) -> list[dict[str, Any]]:
    with LedgerReader(store) as ledger:
        return list(ledger.rejections())


def cohorts(capsys: pytest.CaptureFixture[str], store: str) -> Any:
    code, out, err = run(capsys, "cohorts", "--store", store, "--json")
    assert code == 0, err

    def timeless(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if "recorded" not in k}
        if isinstance(value, list):
            return [timeless(v) for v in value]
        return value

    return timeless(json.loads(out))


def assert_same_ledger(
    capsys: pytest.CaptureFixture[str],
    demo_store: str,
    replay_store: str,
    demo_out: Path,
    replay_out: Path,
) -> None:
    original, replayed = content(demo_store), content(replay_store)
    assert Counter(e["type"] for e in replayed) == Counter(e["type"] for e in original)
    assert replayed == original
    assert kept_rejections(replay_store) == kept_rejections(demo_store)
    assert cohorts(capsys, replay_store) == cohorts(capsys, demo_store)
    for name in DATASETS:
        assert (replay_out / name).read_bytes() == (demo_out / name).read_bytes(), name


def test_an_enlarged_demo_replays_with_the_commands_it_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --subjects 30` (more than the bundled protocol's 27) writes the protocol it opened
    the trial with; its printed commands rebuild the same ledger on a fresh store: no rejection
    (the bundled protocol alone rejects every enrollment after the 27th), the same records, cohort
    table and datasets."""
    monkeypatch.chdir(tmp_path)
    # Drawing the report's and the datasets' Kaplan-Meier plots is most of the demo's time and
    # none of what is tested here.
    monkeypatch.setattr("ledger.projections.report.write_report", lambda *_, **__: None)
    monkeypatch.setattr("ledger.projections.export.write_km_plots", lambda *_: [])
    demo = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--out", str(demo), "--subjects", "30", "--seed", "5")
    assert code == 0, err
    counts = re.search(r"\((\d+) accepted, (\d+) duplicates, (\d+) rejected\)", out)
    assert counts is not None
    accepted, duplicates, rejected = map(int, counts.groups())
    assert load_protocol(demo / "protocol.json").max_subjects == 30
    commands = [line.strip() for line in out.splitlines() if line.startswith("  ledger ")]

    report = replay(capsys, commands)

    assert (report["accepted"], report["duplicates"], len(report["rejected"])) == (
        accepted,
        duplicates,
        rejected,
    )
    assert rejected == 0
    table = cohorts(capsys, str(tmp_path / "replay.db"))
    assert sum(c["enrolled"] for c in table["cohorts"]) == 30
    assert_same_ledger(
        capsys, str(demo / "ledger.db"), "replay.db", demo, tmp_path / "replay-out"
    )


def test_the_default_demo_replays_with_its_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --subjects the demo's protocol file is the bundled protocol, and the same commands
    rebuild its ledger."""
    monkeypatch.chdir(tmp_path)
    demo = run_demo(tmp_path / "demo", seed=12)
    assert load_protocol(demo.protocol_file) == bundled_protocol()
    # The datasets as the demo writes them (`ledger demo` exports at its last day).
    code, _, err = run(
        capsys, "export", "--cutoff", demo.last_day.isoformat(), "--store", demo.store,
        "--out", str(tmp_path / "demo-datasets"),
    )
    assert code == 0, err

    report = replay(capsys, replay_commands(demo, store="replay.db", out="replay-out"))

    assert (report["accepted"], report["duplicates"], len(report["rejected"])) == (
        demo.accepted,
        demo.duplicates,
        demo.rejected,
    )
    assert_same_ledger(
        capsys, demo.store, "replay.db", tmp_path / "demo-datasets", tmp_path / "replay-out"
    )
