"""Exports through the real store: byte-identical as of T; corrections count once recorded."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
import pytest

from ledger.application import LedgerService
from ledger.demo import run_demo
from ledger.projections.datasets import build_datasets
from ledger.projections.define_xml import DEFINE_NAME
from ledger.projections.export import (
    MANIFEST_NAME,
    export_datasets,
    export_report,
    headline,
    write_km_plots,
)
from ledger.projections.km_summary import km_summary

TRIAL = "NCT05406206"
C1D1 = date(2025, 1, 6)
T1 = datetime(2025, 5, 1, 18, 0, tzinfo=UTC)
T2 = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)
FILES = ("adsl", "adtte", "adrs", "adae")


def records(frame: pd.DataFrame) -> list[Any]:
    """Rows as named tuples, typed loosely: the columns hold mixed kinds by design."""
    return list(frame.itertuples(index=False))


class Clock:
    """The ledger's clock, moved by the test: each reading is a microsecond later."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


class Site:
    """Sends envelopes (contract §1) with deterministic event ids."""

    def __init__(self, ledger: LedgerService, clock: Clock) -> None:
        self.ledger = ledger
        self.clock = clock
        self.count = 0

    def send(
        self, type_: str, subject: str, on: date, data: dict[str, Any], reason: str | None = None
    ) -> str:
        self.count += 1
        # Sites send on the evening of the day it happened (or later): never a future date.
        self.clock.now = max(self.clock.now, datetime.combine(on, time(18, 0), tzinfo=UTC))
        event_id = str(uuid.UUID(int=self.count, version=4))
        envelope = {
            "event_id": event_id, "type": type_, "schema_version": 1, "trial_id": TRIAL,
            "subject_id": subject, "occurred_on": on.isoformat(), "source": "edc-site-01",
            "entered_by": "crc.01", "reason": reason, "data": data,
        }
        result = self.ledger.submit(json.dumps(envelope))
        assert not result.rejected, result.message
        return event_id

    def scan(self, subject: str, on: date, t1: float, t2: float, *, baseline: bool = False,
             inv: str | None = None) -> str:
        return self.send("tumor.assessed", subject, on, scan_data(t1, t2, baseline, inv))


def scan_data(
    t1: float, t2: float, baseline: bool = False, inv: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "baseline": baseline,
        "target_lesions": [{"lesion_id": "T1", "diameter_mm": t1, "nodal": False},
                           {"lesion_id": "T2", "diameter_mm": t2, "nodal": False}],
        "non_target": "NONE", "new_lesions": False,
    }
    if inv is not None:
        data["investigator_response"] = inv
    return data


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[LedgerService, Clock, dict[str, str]]]:
    """Three subjects in cohort A recorded before T1: the service, its clock, key event ids."""
    clock = Clock(datetime(2025, 1, 1, 9, 0, tzinfo=UTC))
    with LedgerService(str(tmp_path / "ledger.db"), clock=clock) as ledger:
        ledger.ensure_trial()
        site = Site(ledger, clock)
        ids: dict[str, str] = {}
        for subject in ("01-001", "01-002", "01-003"):
            site.send("subject.enrolled", subject, date(2025, 1, 2), {"cohort": "A"})
            site.scan(subject, date(2024, 12, 30), 50, 50, baseline=True)
            site.send("haic.administered", subject, C1D1,
                      {"cycle": 1, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000})
            for day in range(2):
                site.send("fruquintinib.dosed", subject, C1D1 + timedelta(days=day),
                          {"dose_mg": 3})
        ids["scan"] = site.scan("01-001", date(2025, 3, 3), 45, 45, inv="SD")
        site.scan("01-002", date(2025, 3, 3), 30, 30, inv="PR")
        site.scan("01-002", date(2025, 4, 28), 25, 25, inv="PR")
        site.scan("01-003", date(2025, 3, 3), 40, 40, inv="SD")
        site.send("subject.alive", "01-003", date(2025, 4, 25), {})
        assert clock.now < T1
        yield ledger, clock, ids


def amend(ledger: LedgerService, clock: Clock, ids: dict[str, str]) -> None:
    """After T1: 01-001's scan corrected to PD, and 01-003's death on 04-10 reported late."""
    clock.now = T1 + timedelta(days=10)
    site = Site(ledger, clock)
    site.count = 1000
    site.send("record.corrected", "01-001", date(2025, 3, 3),
              {"target_event_id": ids["scan"], "data": scan_data(60, 60, inv="SD")},
              reason="source data verification: diameters transposed")
    site.send("subject.died", "01-003", date(2025, 4, 10), {"cause": "disease progression"})
    assert clock.now < T2


def export(ledger: LedgerService, out: Path, as_of: datetime | None,
           cutoff: date | None = None, fmt: str = "csv") -> dict[str, Any]:
    export_datasets(
        ledger.entries(TRIAL), as_of=as_of, cutoff=cutoff, fmt=fmt,  # type: ignore[arg-type]
        out=out, software_version="9.9.9-test",
    )
    manifest: dict[str, Any] = json.loads((out / MANIFEST_NAME).read_text())
    return manifest


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def adtte_rows(folder: Path) -> dict[tuple[str, str], tuple[str, int, int]]:
    frame = pd.read_csv(folder / "adtte.csv", dtype=str)
    return {
        (r.USUBJID.removeprefix(f"{TRIAL}-"), r.PARAMCD): (r.ADT, int(r.AVAL), int(r.CNSR))
        for r in records(frame)
    }


def test_export_as_of_t1_is_byte_identical_after_later_corrections(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """Re-exporting as of T1 after corrections and late data gives the same bytes, manifest too."""
    ledger, clock, ids = store
    first = tmp_path / "t1-first"
    export(ledger, first, T1)
    amend(ledger, clock, ids)
    again = tmp_path / "t1-again"
    export(ledger, again, T1)
    assert files_of(first) == files_of(again)
    assert sorted(files_of(first)) == sorted(
        [*(f"{n}.csv" for n in FILES), DEFINE_NAME, MANIFEST_NAME]
    )


def test_export_as_of_t2_reflects_corrections_and_late_data(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """As of T2 the corrected scan is PD (PFS event on 03-03) and the late death ends OS."""
    ledger, clock, ids = store
    export(ledger, tmp_path / "t1", T1)
    amend(ledger, clock, ids)
    manifest = export(ledger, tmp_path / "t2", T2)
    before, after = adtte_rows(tmp_path / "t1"), adtte_rows(tmp_path / "t2")
    assert before[("01-001", "PFS")] == ("2025-03-03", 57, 2)
    assert after[("01-001", "PFS")] == ("2025-03-03", 57, 0)
    assert before[("01-003", "OS")] == ("2025-04-25", 110, 7)
    assert after[("01-003", "OS")] == ("2025-04-10", 95, 0)
    last = list(ledger.entries(TRIAL, as_of=T2))[-1]
    assert manifest["ledger_position"] == last.position
    assert manifest["last_recorded_at"] == last.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert manifest["as_of"] == "2025-06-01T18:00:00.000000Z"


def test_cutoff_and_as_of_together(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """As of T2 with cutoff 04-01: the correction counts, the 04-10 death is past the cutoff."""
    ledger, clock, ids = store
    amend(ledger, clock, ids)
    manifest = export(ledger, tmp_path / "cut", T2, cutoff=date(2025, 4, 1))
    rows = adtte_rows(tmp_path / "cut")
    assert rows[("01-001", "PFS")] == ("2025-03-03", 57, 0)
    assert rows[("01-003", "OS")] == ("2025-04-01", 86, 8)
    assert rows[("01-002", "PFS")] == ("2025-03-03", 57, 2)  # the 04-28 scan is past the cutoff
    assert manifest["cutoff"] == "2025-04-01"
    assert (manifest["protocol_id"], manifest["protocol_version"]) == (TRIAL, "1.0")
    assert manifest["software_version"] == "9.9.9-test"


def test_manifest_hashes_match_the_files(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """Every file is listed with its SHA-256, size and row count; the JSON has sorted keys."""
    ledger, _, _ = store
    manifest = export(ledger, tmp_path / "out", None)
    listed = {f["name"]: f for f in manifest["files"]}
    assert list(listed) == [*(f"{n}.csv" for n in FILES), DEFINE_NAME]
    for name, entry in listed.items():
        data = (tmp_path / "out" / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        assert entry["rows"] == (None if name == DEFINE_NAME else data.count(b"\n") - 1)
        assert b"\r" not in data
    text = (tmp_path / "out" / MANIFEST_NAME).read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_xpt_round_trip_and_reproducible(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """Transport files read back with pyreadstat to the same values; re-export is identical."""
    ledger, _, _ = store
    export(ledger, tmp_path / "x1", T1, fmt="xpt")
    export(ledger, tmp_path / "x2", T1, fmt="xpt")
    assert files_of(tmp_path / "x1") == files_of(tmp_path / "x2")
    datasets = build_datasets(ledger.entries(TRIAL), as_of=T1, cutoff=None)
    frame, meta = pyreadstat.read_xport(str(tmp_path / "x1" / "adtte.xpt"))
    assert meta.table_name == "ADTTE"
    assert list(frame.columns) == list(datasets.adtte.columns)
    assert meta.column_names_to_labels["AVAL"] == "Analysis Value"
    assert frame["USUBJID"].tolist() == datasets.adtte["USUBJID"].tolist()
    assert frame["AVAL"].astype(int).tolist() == datasets.adtte["AVAL"].astype(int).tolist()
    assert frame["CNSR"].astype(int).tolist() == datasets.adtte["CNSR"].astype(int).tolist()
    assert frame["ADT"].tolist() == datasets.adtte["ADT"].tolist()
    adsl, _ = pyreadstat.read_xport(str(tmp_path / "x1" / "adsl.xpt"))
    assert adsl["TRTSDT"].tolist() == [C1D1] * 3
    assert adsl["DTHDT"].isna().all()  # an all-missing date column is still a SAS date


def test_unknown_format_is_refused(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """Only csv and xpt are formats."""
    ledger, _, _ = store
    with pytest.raises(ValueError, match="unknown format"):
        export(ledger, tmp_path / "bad", None, fmt="pdf")


def test_plots_and_headline(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """PFS and OS plots (overall and by dose) are PNGs; the headline gives medians and ORR."""
    ledger, _, _ = store
    datasets = build_datasets(ledger.entries(TRIAL), as_of=T1, cutoff=None)
    plots = write_km_plots(datasets, tmp_path / "plots")
    assert [p.name for p in plots] == [
        "km_pfs_overall.png", "km_pfs_by_dose.png", "km_os_overall.png", "km_os_by_dose.png"
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots)
    text = headline(datasets)
    assert "median PFS NR" in text
    assert "ORR Overall: 1/3 = 33.3%" in text


def test_demo_report(tmp_path: Path) -> None:
    """The seeded demo trial exports CSV, XPT, plots and a summary that quotes the headline."""
    run = run_demo(tmp_path / "demo", 12)
    with LedgerService(run.store) as ledger:
        report = export_report(ledger.entries(run.trial_id), as_of=None, cutoff=None,
                               out=tmp_path / "demo", software_version="0.1.0")
    assert (tmp_path / "demo" / "summary.txt").read_text() == report.headline + "\n"
    assert [m.format for m in report.manifests] == ["csv", "xpt"]
    assert len(report.plots) == 4
    adsl = pd.read_csv(tmp_path / "demo" / "adsl.csv")
    assert len(adsl) == 27
    adtte = pd.read_csv(tmp_path / "demo" / "adtte.csv")
    medians = km_summary(adtte).set_index(["PARAMCD", "STRATUM"])
    for paramcd in ("PFS", "OS"):
        overall = medians.loc[(paramcd, "overall")]
        rows = adtte.loc[adtte["PARAMCD"] == paramcd]
        median, lower, upper = (_months(overall[c]) for c in ("MEDIAN", "LCL", "UCL"))
        unit = "" if median == "NR" else " months"
        assert (
            f"median {paramcd} {median}{unit} (95% CI {lower}–{upper}); "
            f"{(rows['CNSR'] == 0).sum()} events / {len(rows)} subjects"
        ) in report.headline.splitlines()


def _months(days: float) -> str:
    """Days as months (30.4375 days) to one place, rounded half-up; NaN (not reached) is NR."""
    if math.isnan(days):
        return "NR"
    months = Decimal(repr(float(days) / (365.25 / 12)))
    return str(months.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def test_manifest_carries_the_audit_provenance_when_given(
    store: tuple[LedgerService, Clock, dict[str, str]], tmp_path: Path
) -> None:
    """root, size and checkpoint given to export_datasets land in manifest.json; nothing else."""
    ledger, _, _ = store
    audit = {"root": "ab" * 32, "size": 7, "checkpoint": {"size": 7, "signature": "x"},
             "other": "ignored"}
    export_datasets(
        ledger.entries(TRIAL), as_of=None, cutoff=None, fmt="csv", out=tmp_path / "a",
        software_version="9.9.9-test", audit=audit,
    )
    manifest = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    assert (manifest["root"], manifest["size"], manifest["checkpoint"]) == (
        "ab" * 32, 7, {"size": 7, "signature": "x"}
    )
    assert "other" not in manifest
    plain = export(ledger, tmp_path / "b", None)
    assert "root" not in plain


def test_a_dataset_breaking_a_conformance_rule_fails_the_export_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger export` of a dataset that breaks a rule of its table (here ADAE AESER holding a
    value outside its codelist) exits 3 with one line naming dataset, variable and rule, and
    writes nothing."""
    import dataclasses

    from ledger import cli
    from ledger.projections import export as export_module
    from ledger.projections.dataset_table import Dataset

    run = run_demo(tmp_path / "demo", seed=1)

    def broken(*args: Any, **kwargs: Any) -> Any:
        datasets = build_datasets(*args, **kwargs)
        adae = datasets.tables["adae"]
        aeser = adae.names.index("AESER")
        first, *rest = adae.rows
        first = (*first[:aeser], "U", *first[aeser + 1:])
        broken_adae = Dataset(adae.columns, (first, *rest))
        return dataclasses.replace(datasets, tables={**datasets.tables, "adae": broken_adae})

    monkeypatch.setattr(export_module, "build_datasets", broken)
    code = cli.main(["export", "--store", run.store, "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 3
    assert error.count("\n") == 1
    assert "ADAE AESER: value 'U' is not a term of codelist NY (codelist rule)" in error
    assert not (tmp_path / "out").exists()
