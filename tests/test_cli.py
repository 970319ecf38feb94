"""The `ledger` command as users run it: outputs, JSON shapes, exit codes, demo replay."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.aggregates.escalation import Variant
from ledger.cli import main
from ledger.simulation import simulate
from tests.builders import Script, lines


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_json_reports_accepted_duplicates_and_rejections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`submit --json` gives the contract's keys, with each rejection's reason, and exits 1."""
    script = Script()
    enroll = script.enroll("01-001", "A", date(2025, 1, 6))
    file = tmp_path / "in.jsonl"
    file.write_text("\n".join([*lines([enroll, enroll]), "not json"]) + "\n")
    code, out, _ = run(capsys, "submit", str(file), "--store", str(tmp_path / "l.db"), "--json")
    document = json.loads(out)
    assert code == 1
    assert (document["accepted"], document["duplicates"]) == (1, 1)
    assert [(r["line"], r["reason_code"]) for r in document["rejected"]] == [(3, "INVALID_JSON")]


def test_init_then_cohorts_json_has_the_contract_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`init --variant korn` then `cohorts --json`: trial, stage, mtd and one row per cohort."""
    store = str(tmp_path / "l.db")
    assert run(capsys, "init", "--store", store, "--variant", "korn")[0] == 0
    code, out, _ = run(capsys, "cohorts", "--store", store, "--json")
    document = json.loads(out)
    assert code == 0
    assert (document["trial_id"], document["stage"], document["mtd"], document["variant"]) == (
        "NCT05406206",
        "escalation",
        None,
        "korn",
    )
    assert [(c["cohort"], c["dose_mg"], c["state"]) for c in document["cohorts"]] == [
        ("A", 3.0, "open"),
        ("B", 4.0, "not_open"),
        ("C", 5.0, "not_open"),
    ]
    assert set(document["cohorts"][0]) >= {
        "cohort",
        "dose_mg",
        "enrolled",
        "evaluable",
        "dlts",
        "state",
        "decision",
    }


def test_simulate_json_has_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """`simulate --json` reports variant, runs, seed, p_mtd over none/A/B/C and expected_n."""
    code, out, _ = run(
        capsys,
        "simulate",
        "--true-dlt",
        "0.05,0.1,0.6",
        "--runs",
        "500",
        "--seed",
        "3",
        "--variant",
        "storer",
        "--json",
    )
    document = json.loads(out)
    assert code == 0
    assert (document["variant"], document["runs"], document["seed"]) == ("storer", 500, 3)
    assert set(document["p_mtd"]) == {"none", "A", "B", "C"}
    assert sum(document["p_mtd"].values()) == pytest.approx(1.0)
    # The command reports exactly what the simulator computes for the same inputs...
    expected = simulate(Variant.STORER, [0.05, 0.1, 0.6], runs=500, seed=3).to_json_dict()
    assert document == json.loads(json.dumps(expected))
    # ...and what it computes is plausible: 3 to 18 subjects (two cohorts of 3 at each of 3
    # levels), and with C far too toxic and B safe, B is the most likely MTD.
    assert 3 <= document["expected_n"] <= 18
    assert max(document["p_mtd"], key=document["p_mtd"].get) == "B"


BAD_INPUT = [
    pytest.param(
        ("cohorts", "--as-of", "yesterday"),
        "not an ISO-8601 timestamp",
        id="as-of that is not a timestamp",
    ),
    pytest.param(("submit", "missing.jsonl"), "no such file", id="missing file"),
    pytest.param(
        ("simulate", "--true-dlt", "0.1,x,0.3"), "expected numbers", id="rates that are not numbers"
    ),
    pytest.param(("simulate", "--true-dlt", "0.1,0.3"), "needs 3 rates", id="too few rates"),
    pytest.param(("history", "01-001"), "no store at", id="history on a missing store"),
    pytest.param(
        ("init", "--protocol", "nope.json"), "cannot read protocol", id="protocol file missing"
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_exits_non_zero_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    """Bad input: exit 2 and exactly one line on standard error naming the problem."""
    code, _, err = run(
        capsys, *argv, *(["--store", str(tmp_path / "l.db")] if argv[0] != "simulate" else [])
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_unreachable_postgresql_store_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL URL nobody answers: exit 3 (failed) within the connect timeout; the
    password (from the environment, never the command line) is never printed."""
    store = "postgresql://auditor:s3cret@127.0.0.1:1/ledger?connect_timeout=1"
    monkeypatch.setenv("LEDGER_STORE", store)
    code, out, err = run(capsys, "cohorts", "--store", store)
    assert code == 3
    assert len(err.strip().splitlines()) == 1
    assert "cannot open the store postgresql://auditor:***@127.0.0.1:1/ledger" in err
    assert "s3cret" not in out + err


def test_invalid_protocol_is_refused_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A protocol whose doses do not rise is refused, naming the field."""
    protocol = json.loads(Path("ledger/protocols/NCT05406206.json").read_text())
    protocol["dose_levels"][2]["dose_mg"] = 2
    path = tmp_path / "p.json"
    path.write_text(json.dumps(protocol))
    code, _, err = run(capsys, "init", "--protocol", str(path), "--store", str(tmp_path / "l.db"))
    assert code == 2
    assert "dose_levels" in err


def test_schema_prints_one_standard_document_that_validates_submissions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`schema` prints one JSON Schema 2020-12 document that a third-party validator uses as-is:
    the demo's submissions pass it, and a dose sent as a string does not."""
    from jsonschema import Draft202012Validator

    code, out, _ = run(capsys, "schema")
    document = json.loads(out)
    assert code == 0
    Draft202012Validator.check_schema(document)
    validator = Draft202012Validator(document)
    run(capsys, "demo", "--out", str(tmp_path / "demo"), "--seed", "3")
    submissions = (tmp_path / "demo" / "submissions.jsonl").read_text().splitlines()[:300]
    assert all(validator.is_valid(json.loads(line)) for line in submissions)
    dose = next(json.loads(x) for x in submissions if '"fruquintinib.dosed"' in x)
    dose["data"]["dose_mg"] = str(dose["data"]["dose_mg"])
    assert not validator.is_valid(dose)
    code, _, err = run(capsys, "schema", "--type", "no.such")
    assert code == 2 and "subject.enrolled" in err


def test_demo_replays_to_the_same_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger submit` of the demo's submissions rebuilds the same cohort table and events."""
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path / "demo"), "--seed", "12")
    assert code == 0
    assert re.search(r"MTD: [ABC]", out)
    demo_store = str(tmp_path / "demo" / "ledger.db")
    replay_store = str(tmp_path / "replay.db")
    code, out, _ = run(
        capsys, "submit", str(tmp_path / "demo" / "submissions.jsonl"), "--store", replay_store
    )
    assert code == 0
    original = json.loads(run(capsys, "cohorts", "--store", demo_store, "--json")[1])
    replayed = json.loads(run(capsys, "cohorts", "--store", replay_store, "--json")[1])
    assert replayed == original
    subject = next(
        json.loads(line)["subject_id"]
        for line in (tmp_path / "demo" / "submissions.jsonl").read_text().splitlines()
    )
    first = json.loads(run(capsys, "history", subject, "--store", demo_store, "--json")[1])
    second = json.loads(run(capsys, "history", subject, "--store", replay_store, "--json")[1])
    # The recorded time differs between the runs, and with it each entry's leaf hash.
    def content(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        timeless = ("recorded_at", "leaf_hash")
        return [{k: v for k, v in e.items() if k not in timeless} for e in entries]

    assert content(first["entries"]) == content(second["entries"])


@pytest.mark.postgres
def test_commands_on_a_postgresql_store_match_sqlite(
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`init`, `submit`, `cohorts`, `history` and `export` on a postgresql:// store match SQLite."""
    from ledger.demo import run_demo

    demo = run_demo(tmp_path / "demo", seed=12)
    submissions = str(demo.submissions_file)
    sqlite = str(tmp_path / "replay.db")
    # The URL carries a password, so it comes from the environment, never the command line.
    monkeypatch.setenv("LEDGER_STORE", postgres_url)
    code, out, _ = run(capsys, "init", "--json")
    assert code == 0
    assert json.loads(out)["position"] == 1
    code, _, err = run(capsys, "init")
    assert code == 2
    assert "already open" in err
    assert len(err.strip().splitlines()) == 1

    code, out, _ = run(capsys, "submit", submissions, "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["accepted"], report["duplicates"], len(report["rejected"])) == (
        demo.accepted,
        demo.duplicates,
        demo.rejected,
    )
    assert json.loads(run(capsys, "submit", submissions, "--store", sqlite, "--json")[1]) == (
        json.loads(out)
    )

    def both(*argv: str) -> tuple[Any, Any]:
        on_postgres = run(capsys, *argv, "--json")
        on_sqlite = run(capsys, *argv, "--store", sqlite, "--json")
        assert (on_postgres[0], on_sqlite[0]) == (0, 0)
        return json.loads(on_postgres[1]), json.loads(on_sqlite[1])

    cohorts, expected = both("cohorts")
    assert cohorts == expected
    assert cohorts["mtd"] in {"A", "B", "C"}
    demo_cohorts = run(capsys, "cohorts", "--store", demo.store, "--json")
    assert cohorts == json.loads(demo_cohorts[1])
    subject = json.loads(Path(submissions).read_text().splitlines()[0])["subject_id"]
    history, expected = both("history", subject)
    assert len(history["entries"]) > 1
    # Recorded times differ between the stores, and with them the leaf hashes.
    timeless = ("recorded_at", "leaf_hash")
    assert [{k: v for k, v in e.items() if k not in timeless} for e in history["entries"]] == [
        {k: v for k, v in e.items() if k not in timeless} for e in expected["entries"]
    ]

    # The stores recorded at different times: the manifest's times, tree heads and define.xml
    # (stamped with the last recorded time) differ; the datasets themselves must not.
    store_bound = ("last_recorded_at", "root", "checkpoint", "files")
    exported = {}
    for name, store in (("pg", None), ("sq", sqlite)):
        code, out, _ = run(
            capsys,
            "export",
            *(["--store", store] if store else []),
            "--out",
            str(tmp_path / name),
            "--json",
            "--cutoff",
            "2026-06-30",
        )
        assert code == 0
        exported[name] = json.loads(out)
    assert {k: v for k, v in exported["pg"].items() if k not in store_bound} == {
        k: v for k, v in exported["sq"].items() if k not in store_bound
    }
    names = [f["name"] for f in exported["pg"]["files"] if f["name"].endswith(".csv")]
    assert names == ["adsl.csv", "adtte.csv", "adrs.csv", "adae.csv"]
    for name in names:
        assert (tmp_path / "pg" / name).read_bytes() == (tmp_path / "sq" / name).read_bytes()


def test_kafka_options_are_declared_when_their_command_is_parsed() -> None:
    """The Kafka options are declared only when a command that takes them is parsed (building
    the parser imports no Kafka code), and each one then has help text."""
    import argparse

    from ledger.cli import _CommandParser, _parser

    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands: dict[str, _CommandParser] = subparsers.choices
    options = {name: {a.dest for a in sub._actions} for name, sub in commands.items()}
    assert "bootstrap" not in options["ingest"] | options["verify"] | options["cohorts"]
    for sub in commands.values():
        sub.declare_all()
    declared = {name: {a.dest for a in sub._actions} for name, sub in commands.items()}
    assert {"bootstrap", "max_batch"} <= declared["ingest"]
    assert {"bootstrap", "ledger_topic"} <= declared["verify"] & declared["replay"]
    assert "nodes" in declared["broker"] and "bootstrap" in declared["publish"]
    assert declared["cohorts"] == options["cohorts"]
    assert [a.dest for sub in commands.values() for a in sub._actions if a.help is None] == []
    args = parser.parse_args(["ingest", "--bootstrap", "127.0.0.1:1", "--max-batch", "5"])
    assert (args.bootstrap, args.max_batch) == ("127.0.0.1:1", 5)


def test_a_store_with_two_trials_names_both_and_reads_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read finds every trial a store holds (from the aggregates' first rows, not a scan of
    the log): without --trial it names both; with it, it reads that trial."""
    from ledger.protocol_files import bundled_protocol

    store = str(tmp_path / "l.db")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**bundled_protocol().to_mapping(), "trial_id": "NCT99999999"}))
    assert run(capsys, "init", "--store", store)[0] == 0
    assert run(capsys, "init", "--store", store, "--protocol", str(other))[0] == 0
    code, _, err = run(capsys, "cohorts", "--store", store)
    assert code == 2 and "several trials (NCT05406206, NCT99999999)" in err
    code, out, _ = run(capsys, "cohorts", "--store", store, "--trial", "NCT99999999", "--json")
    assert code == 0 and json.loads(out)["trial_id"] == "NCT99999999"
