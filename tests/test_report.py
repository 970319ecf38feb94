"""The statistician's report: the data behind each figure on hand-built trials, the page itself."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.aggregates.escalation import LevelCount, Variant, decide
from ledger.entries import LedgerEntry
from ledger.projections.datasets import AnalysisDatasets, build_datasets
from ledger.projections.export import MANIFEST_NAME, export_datasets
from ledger.projections.km_summary import KM_SUMMARY_COLUMNS, km_summary, km_summary_csv
from ledger.projections.report import figure_data, safety_tables, write_report
from ledger.projections.report.ledger_reading import read_ledger
from ledger.projections.report.rules import decision_table, describe_decision
from tests.builders import TRIAL_ID, Script, lines, open_ledger

C1D1 = date(2025, 1, 6)
CUTOFF = date(2025, 12, 31)
BASELINE = {"01-001": (50.0, 30.0), "01-002": (40.0, 20.0)}
VISITS = {  # subject -> [(day after C1D1, (T1, T2) in mm)]
    "01-001": [(56, (40.0, 20.0)), (112, (30.0, 16.0)), (168, (30.0, 15.0))],
    "01-002": [(56, (44.0, 22.0)), (112, (54.0, 26.0))],
}


def _assessment(script: Script, subject: str, on: date, sizes: tuple[float, float],
                baseline: bool) -> dict[str, Any]:
    lesions = [{"lesion_id": f"T{i}", "diameter_mm": d, "nodal": False}
               for i, d in enumerate(sizes, start=1)]
    return script.envelope("tumor.assessed", subject, on, {
        "baseline": baseline, "target_lesions": lesions, "non_target": "NONE",
        "new_lesions": False})


def _trial(tmp_path: Path, *, term: str = "hypertension") -> list[LedgerEntry]:
    """Cohort A: 01-001 responds (PR, confirmed), 01-002 progresses, 01-003 has a DLT.

    Then 01-001 has a dose modification and 01-002 a dose on a day off schedule."""
    script = Script()
    items: list[dict[str, Any]] = []
    for number, subject in enumerate(("01-001", "01-002", "01-003")):
        start = C1D1 + timedelta(days=7 * number)
        items.append(script.enroll(subject, "A", start - timedelta(days=3)))
        if subject in BASELINE:
            items.append(_assessment(script, subject, start - timedelta(days=3),
                                     BASELINE[subject], baseline=True))
        items += script.cycle_one(subject, "A", start, dlt=True if subject == "01-003" else None)
        for day, sizes in VISITS.get(subject, []):
            items.append(_assessment(script, subject, start + timedelta(days=day), sizes,
                                     baseline=False))
    third = next(i for i in items if i["type"] == "adverse_event.reported")
    third["data"]["term"] = term
    items.append(script.envelope("dose.modified", "01-001", C1D1 + timedelta(days=30),
                                 {"dose_mg": 2.0}))
    items.append(script.envelope("fruquintinib.dosed", "01-002", C1D1 + timedelta(days=7 + 23),
                                 {"dose_mg": 3.0}))
    service = open_ledger(tmp_path)
    report = service.submit_many(lines(items))
    assert not report.rejected, report.rejected
    return list(service.entries(TRIAL_ID))


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[LedgerEntry], AnalysisDatasets]:
    entries = _trial(tmp_path_factory.mktemp("trial"))
    return entries, build_datasets(entries, as_of=None, cutoff=CUTOFF)


def _pchg(subject: str, sizes: tuple[float, float]) -> float:
    base = sum(BASELINE[subject])
    return 100 * (sum(sizes) - base) / base


def test_waterfall_bar_is_each_subjects_best_change_from_the_measurements(
    trial: tuple[list[LedgerEntry], AnalysisDatasets],
) -> None:
    """A waterfall bar is the lowest % change from baseline up to the first PD, per subject."""
    _, datasets = trial
    bars = figure_data.waterfall_bars(datasets.adrs, datasets.adsl)
    expected = {s: min(_pchg(s, sizes) for _, sizes in VISITS[s]) for s in BASELINE}
    assert {b.subjid: b.best_pchg for b in bars} == pytest.approx(expected)
    assert [b.subjid for b in bars] == sorted(expected, key=lambda s: -expected[s])
    cbor = datasets.adrs.loc[datasets.adrs["PARAMCD"] == "CBOR"].set_index("USUBJID")["AVALC"]
    assert {b.usubjid: b.response for b in bars} == {u: cbor[u] for u in cbor.index
                                                     if u.endswith(tuple(BASELINE))}


def test_spider_line_follows_every_assessment_in_weeks_from_c1d1(
    trial: tuple[list[LedgerEntry], AnalysisDatasets],
) -> None:
    """A spider line starts at (0, 0 %) and has one point per assessment at (day / 7, % change)."""
    _, datasets = trial
    lines = {line.subjid: line for line in figure_data.spider_lines(datasets.adrs, datasets.adsl)}
    assert set(lines) == set(VISITS)
    for subject, visits in VISITS.items():
        assert lines[subject].weeks == pytest.approx((0.0, *(day / 7 for day, _ in visits)))
        assert lines[subject].pchg == pytest.approx((0.0, *(_pchg(subject, s) for _, s in visits)))


def test_swimmer_lane_is_the_treatment_duration_with_response_and_progression_marks(
    trial: tuple[list[LedgerEntry], AnalysisDatasets],
) -> None:
    """A swimmer lane is ADSL TRTDURD long (first to last dose) with CR/PR and PD marks."""
    _, datasets = trial
    lanes = {lane.subjid: lane for lane in figure_data.swimmer_lanes(
        datasets.adsl, datasets.adrs, ["A"])}
    adsl = datasets.adsl.set_index("SUBJID")
    for subject, lane in lanes.items():
        assert lane.duration_days == adsl.loc[subject, "TRTDURD"]
        first, last = adsl.loc[subject, "TRTSDT"], adsl.loc[subject, "TRTEDT"]
        assert lane.duration_days == (last - first).days + 1
    assert [day for day, _ in lanes["01-001"].responses] == [112, 168]
    assert lanes["01-002"].progression_day == 112
    assert lanes["01-001"].progression_day is None


def test_timeline_lane_is_the_dlt_window_with_the_dlt_onset(
    trial: tuple[list[LedgerEntry], AnalysisDatasets],
) -> None:
    """A timeline lane runs from C1D1 for the protocol's DLT window and marks adjudicated DLTs."""
    entries, datasets = trial
    reading = read_ledger(entries, as_of=None, cutoff=CUTOFF)
    window = reading.protocol.escalation.dlt_window_days
    lanes = {lane.subjid: lane for lane in figure_data.dlt_lanes(
        datasets.adsl, datasets.adae, window)}
    for number, subject in enumerate(("01-001", "01-002", "01-003")):
        start = C1D1 + timedelta(days=7 * number)
        assert (lanes[subject].start, lanes[subject].window_end) == (
            start, start + timedelta(days=window - 1))
    assert lanes["01-003"].dlt_onsets == (C1D1 + timedelta(days=14 + 9),)
    assert lanes["01-001"].dlt_onsets == ()


def test_ledger_reading_numbers_decisions_and_lists_modifications_and_deviations(
    trial: tuple[list[LedgerEntry], AnalysisDatasets],
) -> None:
    """The ledger's decisions are numbered in order; dose changes and deviations are listed."""
    entries, _ = trial
    reading = read_ledger(entries, as_of=None, cutoff=CUTOFF)
    recorded = [e for e in entries if e.type == "cohort.expanded"]
    assert [(d.number, d.type, d.position) for d in reading.decisions] == [
        (1, "cohort.expanded", recorded[0].position)]
    [modification] = reading.modifications
    assert (modification.subject_id, modification.previous_mg, modification.dose_mg) == (
        "01-001", 3.0, 2.0)
    assert [(d.subject_id, d.code) for d in reading.deviations] == [("01-002", "OFF_DAY_DOSE")]


def test_ledger_reading_respects_the_cutoff(
    trial: tuple[list[LedgerEntry], AnalysisDatasets],
) -> None:
    """Decisions, modifications and deviations dated after the cutoff are left out."""
    entries, _ = trial
    reading = read_ledger(entries, as_of=None, cutoff=C1D1 + timedelta(days=29))
    assert reading.modifications == ()
    assert reading.deviations == ()


def test_ae_table_counts_subjects_at_their_worst_grade(
    trial: tuple[list[LedgerEntry], AnalysisDatasets],
) -> None:
    """The AE table counts each subject once per term, in the column of their worst grade."""
    _, datasets = trial
    n, rows = safety_tables.ae_by_term_and_grade(datasets.adsl, datasets.adae)
    assert n == 3
    assert [(r.label, r.cells) for r in rows] == [
        ("hypertension", ("0", "0", "1 (33.3%)", "0", "0", "1 (33.3%)", "1 (33.3%)"))]
    [dlt] = safety_tables.dlt_listing(datasets.adae)
    assert (dlt.usubjid, dlt.grade, dlt.dlt) == ("01-003", "3", "Y")


_L = LevelCount


@pytest.mark.parametrize(
    ("counts", "current", "variant", "expected"),
    [
        pytest.param((_L(3, 0), _L()), 0, Variant.KORN, "escalate to d+1", id="0/3 escalates"),
        pytest.param((_L(3, 1), _L()), 0, Variant.KORN, "treat 3 more at d", id="1/3 expands"),
        pytest.param((_L(3, 0), _L(3, 2)), 1, Variant.KORN, "de-escalate: treat 3 more at d−1",
                     id="korn 2/3 goes back"),
        pytest.param((_L(3, 0), _L(3, 2)), 1, Variant.STORER, "MTD is d−1",
                     id="storer 2/3 declares below"),
        pytest.param((_L(3, 0), _L(3, 0)), 1, Variant.KORN, "MTD is d", id="top 0/3 declares"),
        pytest.param((_L(3, 2), _L()), 0, Variant.KORN, "stop: no tolerable dose",
                     id="lowest too toxic stops"),
    ],
)
def test_decision_is_described_relative_to_the_level_decided(
    counts: tuple[LevelCount, ...], current: int, variant: Variant, expected: str
) -> None:
    """Each decide() outcome reads in words relative to d, the level being decided."""
    assert describe_decision(decide(variant, counts, current), current) == expected


def test_decision_table_differs_between_variants_only_where_the_rule_does() -> None:
    """The table covers all variants; korn and storer differ on ≥2 DLTs with 3 at d−1."""
    rows = decision_table()
    assert all(tuple(v for v, _ in r.decisions) == tuple(Variant) for r in rows)
    going_back = [r for r in rows if r.situation.endswith("d−1 had 3") and r.seen == "≥2/3"]
    [row] = going_back
    answers = dict(row.decisions)
    assert answers[Variant.KORN] != answers[Variant.STORER]


def test_report_is_deterministic_and_km_summary_follows_the_contract(
    trial: tuple[list[LedgerEntry], AnalysisDatasets], tmp_path: Path
) -> None:
    """Two runs give identical bytes; km_summary.csv is km_summary of the exported ADTTE."""
    entries, datasets = trial
    for run in ("one", "two"):
        write_report(entries, as_of=None, cutoff=CUTOFF, out=tmp_path / run,
                     software_version="test", provenance=None)
    for name in ("report.html", "km_summary.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    csv = (tmp_path / "one" / "km_summary.csv").read_bytes()
    assert csv.decode().splitlines()[0] == ",".join(KM_SUMMARY_COLUMNS)
    assert csv == km_summary_csv(km_summary(datasets.adtte, cohort_col="COHORT"))


def test_report_is_self_contained_with_every_figure(
    trial: tuple[list[LedgerEntry], AnalysisDatasets], tmp_path: Path
) -> None:
    """The page loads nothing from outside and embeds the timeline, response and KM figures."""
    entries, _ = trial
    files = write_report(entries, as_of=None, cutoff=CUTOFF, out=tmp_path,
                         software_version="test", provenance=None)
    html = files.html.read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)\s*=\s*"(?!data:|#)', html) == []
    assert set(files.figures) >= {"timeline", "waterfall", "spider", "swimmer"}
    assert html.count("<svg") == 4
    assert html.count('src="data:image/png;base64,') == len(files.figures) - 4 >= 4
    for word in ("Waterfall", "Swimmer", "Spider", "Kaplan–Meier", "adverse", "DLT",
                 "Median follow-up"):
        assert word in html


def test_report_names_the_export_it_was_built_from(
    trial: tuple[list[LedgerEntry], AnalysisDatasets], tmp_path: Path
) -> None:
    """The provenance lists the same dataset hashes and position as the export manifest."""
    entries, _ = trial
    provenance = {"root": "ab" * 32, "size": len(entries), "checkpoint": None}
    files = write_report(entries, as_of=None, cutoff=CUTOFF, out=tmp_path / "report",
                         software_version="test", provenance=provenance)
    manifest = export_datasets(entries, as_of=None, cutoff=CUTOFF, fmt="csv",
                               out=tmp_path / "export", software_version="test")
    html = files.html.read_text(encoding="utf-8")
    for file in manifest.files:
        if file.name.endswith(".csv"):
            assert file.sha256 in html, file.name
    assert (tmp_path / "export" / MANIFEST_NAME).exists()
    assert f"<td>{manifest.ledger_position}</td>" in html
    assert "ab" * 32 in html


def test_report_escapes_what_the_data_says(tmp_path: Path) -> None:
    """Text from the ledger is escaped, never markup, wherever it lands on the page."""
    entries = _trial(tmp_path, term="<script>alert(1)</script>")
    files = write_report(entries, as_of=None, cutoff=CUTOFF, out=tmp_path / "out",
                         software_version="test", provenance=None)
    html = files.html.read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_without_a_trial_is_a_one_line_error(tmp_path: Path) -> None:
    """Entries holding no trial.opened give a one-line ValueError, not a traceback of pandas."""
    with pytest.raises(ValueError, match=r"no trial\.opened") as raised:
        write_report([], as_of=None, cutoff=None, out=tmp_path, software_version="test",
                     provenance=None)
    assert "\n" not in str(raised.value)
