"""Writing the analysis datasets: CSV or SAS v5 transport files, a manifest, KM plots, a headline.

The same entries, ``as_of`` and ``cutoff`` always give byte-identical files, whatever the wall
clock says: CSV with fixed float formatting and ``\\n`` line ends, transport files stamped with the
``recorded_at`` of the last ledger entry read (not the time of writing), JSON with sorted keys.
The manifest ties the files to the ledger: each file's SHA-256, the position and recorded time of
the last event included, the as-of and cutoff asked for, the protocol, and the software version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

from ledger.aggregates.facts import cycle_collection_paused
from ledger.aggregates.protocol import EXPANSION
from ledger.entries import LedgerEntry, format_timestamp
from ledger.projections.conformance import check_dataset, check_transport
from ledger.projections.dataset_columns import (
    CODELISTS,
    DATASET_COLUMNS,
    DATASET_KEYS,
    DATASET_LABELS,
    Column,
)
from ledger.projections.dataset_json import (
    DatasetJsonHeader,
    dataset_json_bytes,
    metadata_version_oid,
    study_oid,
)
from ledger.projections.dataset_table import Dataset, csv_bytes
from ledger.projections.datasets import AnalysisDatasets, Provenance, build_datasets
from ledger.projections.define_xml import DEFINE_NAME, DefineTable, StudyInfo, define_xml
from ledger.projections.files import write_atomically

__all__ = [
    "MANIFEST_NAME",
    "ExportFormat",
    "Manifest",
    "ManifestFile",
    "ReportFiles",
    "export_datasets",
    "export_report",
    "headline",
    "write_datasets",
    "write_km_plots",
]

ExportFormat = Literal["csv", "xpt", "json"]

MANIFEST_NAME: Final = "manifest.json"

_SCHEMAS: Final[Mapping[str, tuple[Column, ...]]] = DATASET_COLUMNS
_FORMATS: Final = ("csv", "xpt", "json")
AUDIT_KEYS: Final = ("root", "size", "checkpoint")
"""The manifest's provenance keys from the Merkle log (contract §6), when the caller gives them."""


@dataclass(frozen=True, slots=True)
class ManifestFile:
    name: str
    sha256: str
    size: int
    rows: int | None
    """Data rows of a dataset file; None for the metadata (define.xml)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What was exported, from which ledger state, by which software (``manifest.json``)."""

    provenance: Provenance
    """The ledger state read: trial, protocol, last position and time, as-of, cutoff."""
    format: str
    software_version: str
    files: tuple[ManifestFile, ...]
    audit: Mapping[str, Any] | None = field(default=None)
    """``root``, ``size`` and ``checkpoint`` of the ledger state read (contract §6), when known."""

    @property
    def ledger_position(self) -> int:
        return self.provenance.last_position

    @property
    def summary(self) -> str:
        """How many subjects the datasets hold, or that they hold none (a cutoff before the
        first enrollment is an empty result, said so rather than passed over)."""
        subjects = next(f.rows for f in self.files if f.name.startswith("adsl."))
        if not subjects:
            return "no subject enrolled by the cutoff and as-of asked for: every dataset is empty"
        return f"{subjects} subject{'s' if subjects != 1 else ''} in ADSL"

    def to_json_dict(self) -> dict[str, Any]:
        p = self.provenance
        document = {
            "trial_id": p.trial_id,
            "protocol_id": p.protocol_id,
            "protocol_version": p.protocol_version,
            "ledger_position": p.last_position,
            "last_recorded_at": format_timestamp(p.last_recorded_at),
            "as_of": None if p.as_of is None else format_timestamp(p.as_of),
            "cutoff": None if p.cutoff is None else p.cutoff.isoformat(),
            "format": self.format,
            "software_version": self.software_version,
            "files": [
                {"name": f.name, "sha256": f.sha256, "bytes": f.size, "rows": f.rows}
                for f in self.files
            ],
        }
        if self.audit is not None:
            document.update({key: self.audit[key] for key in AUDIT_KEYS if key in self.audit})
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def export_datasets(
    entries: Iterable[LedgerEntry],
    *,
    as_of: datetime | None,
    cutoff: date | None,
    fmt: ExportFormat,
    out: Path,
    software_version: str,
    audit: Mapping[str, Any] | None = None,
) -> Manifest:
    """Build the datasets from ``entries`` and write adsl, adtte, adrs, adae, define.xml and
    manifest.json. ``audit`` (``root``, ``size``, ``checkpoint``) goes into the manifest as given.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use csv, xpt or json")
    with cycle_collection_paused():
        datasets = build_datasets(entries, as_of=as_of, cutoff=cutoff)
        return write_datasets(
            datasets, fmt=fmt, out=out, software_version=software_version,
            audit=audit,
        )


def write_datasets(
    datasets: AnalysisDatasets,
    *,
    fmt: ExportFormat,
    out: Path,
    software_version: str,
    audit: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write already-built datasets, define.xml and the manifest into ``out`` (created if
    missing)."""
    if fmt not in _FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use csv, xpt or json")
    study = _study_info(datasets, fmt, software_version)
    codelists = {**CODELISTS, **study.extra_codelists}
    for stem, table in datasets.tables.items():  # every dataset checked before a byte is written
        check_dataset(stem.upper(), DATASET_LABELS[stem], table, _SCHEMAS[stem], codelists)
    out.mkdir(parents=True, exist_ok=True)
    provenance = datasets.provenance
    files = []
    tables = []
    for stem, table in datasets.tables.items():
        path = out / f"{stem}.{fmt}"
        columns = _SCHEMAS[stem]
        written = table
        if fmt == "csv":
            write_atomically(path, csv_bytes(table))
        elif fmt == "json":
            header = DatasetJsonHeader(
                study_oid=study_oid(provenance.trial_id),
                metadata_version_oid=metadata_version_oid(provenance.trial_id),
                define_path=DEFINE_NAME,
                created=provenance.last_recorded_at,
                software_version=software_version,
            )
            write_atomically(path, dataset_json_bytes(
                table, columns, header, name=stem.upper(), label=DATASET_LABELS[stem],
                keys=DATASET_KEYS[stem]))
        else:
            written = _write_xpt(table, columns, path, stem, provenance.last_recorded_at)
            columns = written.columns
        tables.append(
            DefineTable(stem, DATASET_LABELS[stem], columns, written, path.name, DATASET_KEYS[stem])
        )
        files.append(_manifest_file(path, len(table)))
    define_path = out / DEFINE_NAME
    write_atomically(define_path, define_xml(tables, study))
    files.append(_manifest_file(define_path, None))
    manifest = Manifest(
        provenance=provenance,
        format=fmt,
        software_version=software_version,
        files=tuple(files),
        audit=None if audit is None else dict(audit),
    )
    write_atomically(out / MANIFEST_NAME, manifest.to_json().encode("utf-8"))
    return manifest


def _manifest_file(path: Path, rows: int | None) -> ManifestFile:
    data = path.read_bytes()
    return ManifestFile(
        name=path.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data), rows=rows
    )


def _study_info(datasets: AnalysisDatasets, fmt: str, software_version: str) -> StudyInfo:
    provenance = datasets.provenance
    levels = tuple((name, f"Fruquintinib {mg:g} mg") for name, mg in datasets.dose_levels.items())
    return StudyInfo(
        trial_id=provenance.trial_id,
        protocol_id=provenance.protocol_id,
        protocol_version=provenance.protocol_version,
        created=provenance.last_recorded_at,
        software_version=software_version,
        file_format=fmt,
        extra_codelists={
            "DOSELVL": levels or (("", "No dose level"),),
            "COHORT": (*levels, (EXPANSION, "Expansion at the MTD")),
        },
    )


def _write_xpt(
    table: Dataset, schema: tuple[Column, ...], path: Path, stem: str, created: datetime
) -> Dataset:
    """Write one transport file of ``table`` with the types and labels of ``schema`` (the
    column table it was checked against); text over 200 bytes goes into continuation variables.

    Returns the dataset as written: the schema's variables plus any continuations."""
    import pandas as pd  # the transport writer works on frames

    from ledger.projections.xpt import split_long_text, write_xpt

    # Date columns go out as datetime64 so that an all-missing date column is still numeric
    # (a SAS date), and a column keeps its SAS type whatever the data happen to hold.
    frame = table.select(schema).frame()
    converted = frame.copy()
    for column in schema:
        if column.kind == "date":
            converted[column.name] = pd.to_datetime(
                pd.Series(list(frame[column.name]), dtype=object)
            ).astype("datetime64[ns]")
        elif column.kind == "text":
            converted[column.name] = frame[column.name].astype(object)
    split, labels, continuations = split_long_text(converted, {c.name: c.label for c in schema})
    check_transport(stem.upper(), split, labels)
    write_xpt(split, path, stem.upper(), DATASET_LABELS[stem], labels, created)
    columns: list[Column] = []
    for column in schema:
        columns.append(column)
        for k, extra in enumerate(continuations.get(column.name, ()), start=1):
            columns.append(
                replace(
                    column,
                    name=extra,
                    label=labels[extra],
                    method=f"Continuation {k} of {column.name}: its UTF-8 bytes beyond "
                    f"{200 * k} (ADaM: text over 200 bytes split across variables).",
                )
            )
    return Dataset.of_frame(split, columns)


# --- plots and headline -----------------------------------------------------------------------

_PLOTTED: Final = ("PFS", "OS")
_OVERALL_COLUMN: Final = "Population"
_DOSE_COLUMN: Final = "Dose level"


def write_km_plots(datasets: AnalysisDatasets, out: Path) -> list[Path]:
    """Kaplan–Meier PNGs of PFS and OS, overall and by dose level; endpoints without rows skipped.

    Files: ``km_pfs_overall.png``, ``km_pfs_by_dose.png``, ``km_os_overall.png``,
    ``km_os_by_dose.png``.
    """
    from ledger.projections.km_plot import (  # matplotlib: only when plotting
        PlotOptions,
        plot_kaplan_meier,
    )

    out.mkdir(parents=True, exist_ok=True)
    adtte = datasets.adtte
    doses = datasets.dose_levels
    frame = adtte.assign(
        **{
            _OVERALL_COLUMN: "Full analysis set",
            _DOSE_COLUMN: [
                f"{level} ({doses[level]:g} mg)" if level in doses else "unassigned"
                for level in adtte["DOSELVL"]
            ],
        }
    )
    footnote = _footnote(datasets)
    written = []
    for paramcd in _PLOTTED:
        if not (frame["PARAMCD"] == paramcd).any():
            continue
        for suffix, column in (("overall", _OVERALL_COLUMN), ("by_dose", _DOSE_COLUMN)):
            path = out / f"km_{paramcd.lower()}_{suffix}.png"
            options = PlotOptions(footnote=footnote)
            written.append(plot_kaplan_meier(frame, paramcd, column, path, options))
    return written


def _footnote(datasets: AnalysisDatasets) -> str:
    p = datasets.provenance
    as_of = "latest" if p.as_of is None else format_timestamp(p.as_of)
    cutoff = "none" if p.cutoff is None else p.cutoff.isoformat()
    return (
        f"{p.trial_id}, protocol {p.protocol_version}. Ledger position {p.last_position} "
        f"(as of {as_of}); data cutoff {cutoff}."
    )


def headline(datasets: AnalysisDatasets) -> str:
    """A few lines for the terminal: populations, median PFS and OS with CI, ORR with CI."""
    from ledger.projections.km_format import format_median  # lifelines: only for the headline

    p = datasets.provenance
    adsl = datasets.adsl
    fas = int((adsl["FASFL"] == "Y").sum())
    lines = [
        f"{p.trial_id} (protocol {p.protocol_id} v{p.protocol_version}): ledger position "
        f"{p.last_position}, last recorded {format_timestamp(p.last_recorded_at)}; "
        f"as of {'latest' if p.as_of is None else format_timestamp(p.as_of)}; "
        f"cutoff {'none' if p.cutoff is None else p.cutoff.isoformat()}",
        f"enrolled {len(adsl)}, full analysis set {fas}",
    ]
    for paramcd in _PLOTTED:
        summary = datasets.kaplan_meier(paramcd)
        if summary is None:
            lines.append(f"median {paramcd}: no subjects")
            continue
        result = summary.overall
        lines.append(
            f"{format_median(result, paramcd)}; {result.events} events / {result.n} subjects"
        )
    overall, *by_level = datasets.orr
    lines.append(overall.describe())
    lines.extend(f"  {rate.describe()}" for rate in by_level if rate.n)
    if len(datasets.discrepancy_table):
        lines.append(
            f"{len(datasets.discrepancy_table)} response(s) where the investigator's call differs "
            "from RECIST 1.1 as derived (see ADRS DISCRFL)"
        )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What :func:`export_report` wrote."""

    manifests: tuple[Manifest, ...]
    plots: tuple[Path, ...]
    summary: Path
    headline: str


def export_report(
    entries: Iterable[LedgerEntry],
    *,
    as_of: datetime | None,
    cutoff: date | None,
    out: Path,
    software_version: str,
    audit: Mapping[str, Any] | None = None,
) -> ReportFiles:
    """Datasets as CSV (``out/``) and transport files (``out/xpt/``), KM plots, ``summary.txt``.

    What ``ledger demo`` writes into its output folder; the entries are read once.
    """
    datasets = build_datasets(entries, as_of=as_of, cutoff=cutoff)
    manifests = (
        write_datasets(datasets, fmt="csv", out=out, software_version=software_version,
                       audit=audit),
        write_datasets(datasets, fmt="xpt", out=out / "xpt", software_version=software_version,
                       audit=audit),
    )
    plots = write_km_plots(datasets, out)
    text = headline(datasets)
    summary = out / "summary.txt"
    write_atomically(summary, (text + "\n").encode("utf-8"))
    return ReportFiles(manifests=manifests, plots=tuple(plots), summary=summary, headline=text)
