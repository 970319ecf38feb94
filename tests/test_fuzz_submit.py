"""Any bytes in, a record or a rejection out (issue "Defend ... every input", item 1): the fuzz
corpus and random bytes through `ledger submit` never crash it, and every line is accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import LedgerService
from ledger.audit.inspection import verify_source
from ledger.cli import main
from ledger.ledger_reader import LedgerReader
from tests.builders import TRIAL_ID, FixedClock
from tests.fuzz.corpus import read_corpus


def test_the_fuzz_corpus_through_submit_is_accounted_for_line_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,472 hostile and valid lines: no crash, lines = accepted + duplicates + rejected, each
    rejection kept with its line number, and the ledger still verifies."""
    corpus = read_corpus()
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in corpus))
    store = str(tmp_path / "fuzz.db")
    code = main(["submit", str(path), "--store", store, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["lines"] == len(corpus)
    assert report["accepted"] + report["duplicates"] + len(report["rejected"]) == len(corpus)
    assert report["accepted"] > 0 and len(report["rejected"]) > 0
    with LedgerReader(store) as service:
        kept = [r["offset"] for r in service.rejections()]
        result = verify_source(service.audit_source(TRIAL_ID))
    assert kept == [r["line"] for r in report["rejected"]]
    assert result.intact, result.to_json_dict()["problems"][:3]


@given(st.lists(st.binary(max_size=300) | st.text(max_size=200).map(str.encode), max_size=12))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_random_bytes_never_stop_submit(tmp_path: Path, lines: list[bytes]) -> None:
    """Random byte lines: each one a result, never an exception, and the store stays whole."""
    store = tmp_path / "random.db"
    store.unlink(missing_ok=True)
    with LedgerService(str(store), clock=FixedClock()) as service:
        service.ensure_trial()
        report = service.submit_many(lines, origin="file:random.jsonl")
        assert len(report.results) == len(lines)
        assert report.accepted + report.duplicates + len(report.rejected) == len(lines)
        assert verify_source(service.audit_source(TRIAL_ID)).intact
