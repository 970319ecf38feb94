"""``write_report``: the statistician's report (contract §8) as one self-contained HTML page.

Everything on the page comes from the datasets ``ledger export`` writes for the same entries,
``as_of`` and ``cutoff`` (:func:`~ledger.projections.datasets.build_datasets`), except what the
datasets do not hold and the ledger does: its own decisions, dose modifications and protocol
deviations (:mod:`.ledger_reading`, same clocks). The page is rendered by jinja2 with autoescaping
from ``templates/report.html.j2``; figures are inline SVG (:mod:`.figures`) and PNG data URIs
(Kaplan–Meier, :mod:`.efficacy`); nothing is fetched over a network, and no wall-clock time is
written anywhere, so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import jinja2
from markupsafe import Markup

from ledger.aggregates.protocol import EXPANSION
from ledger.entries import LedgerEntry, format_timestamp
from ledger.projections.dataset_table import csv_bytes
from ledger.projections.datasets import AnalysisDatasets, build_datasets
from ledger.projections.files import write_atomically
from ledger.projections.km_summary import km_summary_csv
from ledger.projections.report import efficacy, figure_data, figures, safety_tables
from ledger.projections.report.ledger_reading import LedgerReading, read_ledger
from ledger.projections.report.rules import decision_table

__all__ = ["HTML_NAME", "KM_SUMMARY_NAME", "ReportFiles", "render_report", "write_report"]

HTML_NAME: Final = "report.html"
KM_SUMMARY_NAME: Final = "km_summary.csv"


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What :func:`write_report` wrote, and the figures the page embeds (by name)."""

    html: Path
    km_summary: Path
    figures: tuple[str, ...]


def write_report(
    entries: Iterable[LedgerEntry],
    *,
    as_of: datetime | None,
    cutoff: date | None,
    out: Path,
    software_version: str,
    provenance: Mapping[str, Any] | None,
) -> ReportFiles:
    """Write ``out/report.html`` and ``out/km_summary.csv`` from one trial's entries.

    ``provenance``: the ledger state read (``root``, ``size``, ``checkpoint``) as the export
    manifest carries it; None when the store has no hashed log yet (the page says so).
    Raises ValueError (one line) when the entries hold no trial.
    """
    read = list(entries)
    datasets = build_datasets(read, as_of=as_of, cutoff=cutoff)
    reading = read_ledger(read, as_of=as_of, cutoff=cutoff)
    html, km_table, names = render_report(datasets, reading, software_version, provenance)
    out.mkdir(parents=True, exist_ok=True)
    html_path, km_path = out / HTML_NAME, out / KM_SUMMARY_NAME
    write_atomically(km_path, km_summary_csv(km_table))
    write_atomically(html_path, html.encode("utf-8"))
    return ReportFiles(html=html_path, km_summary=km_path, figures=names)


def render_report(
    datasets: AnalysisDatasets,
    reading: LedgerReading,
    software_version: str,
    provenance: Mapping[str, Any] | None,
) -> tuple[str, Any, tuple[str, ...]]:
    """The page's HTML, the km_summary frame and the names of the embedded figures."""
    levels = dict(datasets.dose_levels)
    adsl, adtte, adrs, adae = datasets.adsl, datasets.adtte, datasets.adrs, datasets.adae
    cohorts = {lv: f"{lv} ({mg:g} mg)" for lv, mg in levels.items()}
    expansion_level = reading.expansion_level
    cohorts[EXPANSION] = (
        f"Expansion ({expansion_level}, {levels[expansion_level]:g} mg)"
        if expansion_level in levels else "Expansion"
    )
    svgs: dict[str, str] = {}
    lanes = figure_data.dlt_lanes(adsl, adae, reading.protocol.escalation.dlt_window_days)
    if lanes:
        svgs["timeline"] = figures.timeline_svg(lanes, reading.decisions, cohorts)
    bars = figure_data.waterfall_bars(adrs, adsl)
    if bars:
        svgs["waterfall"] = figures.waterfall_svg(bars)
    spider = figure_data.spider_lines(adrs, adsl)
    if spider:
        svgs["spider"] = figures.spider_svg(spider, list(levels))
    swimmer = figure_data.swimmer_lanes(adsl, adrs, list(levels))
    if swimmer:
        svgs["swimmer"] = figures.swimmer_svg(swimmer, levels)

    footnote = _footnote(datasets)
    km_table, follow_up = efficacy.km_tables(adtte)
    km_figures = efficacy.km_figures(adtte, levels, footnote) if len(adtte) else []
    headers, overview = safety_tables.safety_overview(adsl, adae, list(levels))
    n_safety, by_term = safety_tables.ae_by_term_and_grade(adsl, adae)
    p = datasets.provenance
    context = {
        "p": p,
        "as_of": "latest (everything recorded)" if p.as_of is None else format_timestamp(p.as_of),
        "cutoff": "none" if p.cutoff is None else p.cutoff.isoformat(),
        "last_recorded_at": format_timestamp(p.last_recorded_at),
        "software_version": software_version,
        "variant": reading.protocol.escalation.variant.value,
        "title": reading.protocol.title,
        "protocol": reading.protocol,
        "svg": {name: Markup(text) for name, text in svgs.items()},
        "cohort_rows": _cohort_rows(adsl, cohorts),
        "decisions": reading.decisions,
        "rules": decision_table(),
        "variants": [v.value for v in type(reading.protocol.escalation.variant)],
        "km_figures": km_figures,
        "km_rows": efficacy.km_rows(km_table, levels),
        "follow_up": efficacy.follow_up_rows(follow_up, levels),
        "endpoints": efficacy.ENDPOINTS,
        "orr": efficacy.orr_rows(datasets.orr),
        "n_bars": len(bars),
        "n_fas": int((adsl["FASFL"] == "Y").sum()),
        "n_lines": len(spider),
        "n_lanes": len(swimmer),
        "n_untreated": int((adsl["SAFFL"] != "Y").sum()),
        "safety_headers": headers,
        "safety_overview": overview,
        "n_safety": n_safety,
        "by_term": by_term,
        "grades": safety_tables.GRADES,
        "sae": safety_tables.serious_listing(adae),
        "dlts": safety_tables.dlt_listing(adae),
        "modifications": reading.modifications,
        "deviations": reading.deviations,
        "audit": _audit_rows(provenance),
        "datasets": _dataset_rows(datasets),
        "discrepancies": len(datasets.discrepancy_table),
    }
    names = (*svgs, *(f"km_{f.paramcd.lower()}_{i}" for i, f in enumerate(km_figures)))
    return _template().render(context), km_table, tuple(names)


def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("ledger.projections.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2")


def _footnote(datasets: AnalysisDatasets) -> str:
    p = datasets.provenance
    as_of = "latest" if p.as_of is None else format_timestamp(p.as_of)
    cutoff = "none" if p.cutoff is None else p.cutoff.isoformat()
    return f"{p.trial_id}: ledger position {p.last_position} (as of {as_of}); data cutoff {cutoff}."


def _cohort_rows(adsl: Any, cohorts: Mapping[str, str]) -> list[dict[str, object]]:
    """Per enrollment cohort: enrolled, treated, DLT-evaluable, DLTs, not evaluable (replaced)."""
    rows = []
    for cohort, title in cohorts.items():
        subjects = adsl.loc[adsl["COHORT"] == cohort]
        if subjects.empty:
            continue
        rows.append(
            {
                "cohort": title,
                "enrolled": len(subjects),
                "treated": int((subjects["SAFFL"] == "Y").sum()),
                "evaluable": int((subjects["DLTEVLFL"] == "Y").sum()),
                "dlts": int((subjects["DLTFL"] == "Y").sum()),
                "replaced": int((subjects["DLTEVLFL"] == "N").sum()),
                "open": int(((subjects["SAFFL"] == "Y") & subjects["DLTEVLFL"].isna()).sum()),
            }
        )
    return rows


def _audit_rows(provenance: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if provenance is None:
        return [("Merkle tree", "not available: the store was written before the ledger hashed "
                                "its log (run any write to seal it)")]
    rows = [
        ("Ledger size (entries hashed)", str(provenance.get("size", ""))),
        ("Merkle root (RFC 6962, SHA-256)", str(provenance.get("root", ""))),
    ]
    checkpoint = provenance.get("checkpoint")
    if not checkpoint:
        rows.append(("Signed checkpoint", "none recorded within this ledger state"))
    else:
        for key in sorted(checkpoint):
            rows.append((f"Checkpoint {key}", str(checkpoint[key])))
    return rows


def _dataset_rows(datasets: AnalysisDatasets) -> list[tuple[str, int, str]]:
    """Each dataset's rows and the SHA-256 of the CSV ``ledger export`` writes for it."""
    rows = []
    for stem, table in datasets.tables.items():
        digest = hashlib.sha256(csv_bytes(table)).hexdigest()
        rows.append((f"{stem}.csv", len(table), digest))
    return rows
