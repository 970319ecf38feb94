"""Safety tables from ADSL and ADAE: what a safety review committee reads first.

Counts are subjects, not events (a subject counts once per row, at the worst grade they had);
percentages are of the safety population (``SAFFL = Y``) of the column. Adverse events are those
of safety-population subjects; "treatment-emergent" is ADAE ``TRTEMFL = Y``. The term is the
MedDRA preferred term (``AEDECOD``) when coded, else the reported term (``AETERM``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd

__all__ = [
    "AeListingRow",
    "CountRow",
    "ae_by_term_and_grade",
    "ae_listing",
    "dlt_listing",
    "safety_overview",
    "serious_listing",
]

GRADES: Final = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class CountRow:
    label: str
    cells: tuple[str, ...]
    """"n (x.x%)" per column."""


@dataclass(frozen=True, slots=True)
class AeListingRow:
    usubjid: str
    doselvl: str
    term: str
    onset: str
    study_day: str
    grade: str
    serious: str
    related: str
    resolved: str
    dlt: str


def _cell(n: int, of: int) -> str:
    if of == 0 or n == 0:
        return "0"
    return f"{n} ({100 * n / of:.1f}%)"


def _safety(adsl: pd.DataFrame) -> pd.DataFrame:
    return adsl.loc[adsl["SAFFL"] == "Y"]


def _aes(adae: pd.DataFrame, adsl: pd.DataFrame, emergent: bool) -> pd.DataFrame:
    subjects = set(_safety(adsl)["USUBJID"])
    rows = adae.loc[adae["USUBJID"].isin(subjects)]
    if emergent:
        rows = rows.loc[rows["TRTEMFL"] == "Y"]
    return rows.assign(_TERM=[_term(r) for _, r in rows.iterrows()])


def _term(row: Any) -> str:
    coded = row.get("AEDECOD")
    if isinstance(coded, str) and coded.strip():
        return coded
    return str(row["AETERM"])


def _columns(adsl: pd.DataFrame, levels: Sequence[str]) -> list[tuple[str, set[str]]]:
    """(header, safety-population USUBJIDs) for each dose level with subjects, then all."""
    safety = _safety(adsl)
    columns = [
        (level, set(safety.loc[safety["DOSELVL"] == level, "USUBJID"]))
        for level in levels
    ]
    columns = [c for c in columns if c[1]]
    columns.append(("Total", set(safety["USUBJID"])))
    return columns


def safety_overview(
    adsl: pd.DataFrame, adae: pd.DataFrame, levels: Sequence[str]
) -> tuple[list[tuple[str, int]], list[CountRow]]:
    """Column headers with N, and rows: subjects with any TEAE, grade ≥ 3, serious, related,
    fatal, a DLT (of DLT-evaluable), discontinuation for an adverse event."""
    columns = _columns(adsl, levels)
    teae = _aes(adae, adsl, emergent=True)
    safety = _safety(adsl)

    def with_ae(mask: pd.Series[bool]) -> set[str]:
        return set(teae.loc[mask, "USUBJID"])

    everyone = pd.Series(True, index=teae.index)
    grades = pd.to_numeric(teae["ATOXGRN"], errors="coerce")
    sets: list[tuple[str, set[str]]] = [
        ("Any TEAE", with_ae(everyone)),
        ("TEAE of CTCAE grade ≥ 3", with_ae(grades >= 3)),
        ("Serious TEAE", with_ae(teae["AESER"] == "Y")),
        ("Treatment-related TEAE", with_ae(teae["AREL"] == "Y")),
        ("Treatment-related TEAE of grade ≥ 3", with_ae((teae["AREL"] == "Y") & (grades >= 3))),
        ("Fatal TEAE (grade 5)", with_ae(grades == 5)),
        ("Treatment discontinued for an adverse event",
         set(safety.loc[safety["DCTREAS"] == "ADVERSE EVENT", "USUBJID"])),
    ]
    rows = [
        CountRow(label, tuple(_cell(len(found & ids), len(ids)) for _, ids in columns))
        for label, found in sets
    ]
    evaluable = set(safety.loc[safety["DLTEVLFL"] == "Y", "USUBJID"])
    with_dlt = set(safety.loc[safety["DLTFL"] == "Y", "USUBJID"])
    rows.append(
        CountRow(
            "DLT (of DLT-evaluable subjects)",
            tuple(
                f"{len(with_dlt & ids)}/{len(evaluable & ids)}" for _, ids in columns
            ),
        )
    )
    return [(name, len(ids)) for name, ids in columns], rows


def ae_by_term_and_grade(adsl: pd.DataFrame, adae: pd.DataFrame) -> tuple[int, list[CountRow]]:
    """TEAEs by term: subjects by their worst grade of that term, any grade, grade ≥ 3.

    Rows by descending any-grade count, then term; returns (N of the safety population, rows).
    """
    n = len(_safety(adsl))
    teae = _aes(adae, adsl, emergent=True)
    rows = []
    for term, events in teae.groupby("_TERM", sort=True):
        worst = pd.to_numeric(events["ATOXGRN"], errors="coerce").groupby(events["USUBJID"]).max()
        by_grade = [int((worst == grade).sum()) for grade in GRADES]
        rows.append(
            (
                -len(worst),
                str(term),
                CountRow(
                    str(term),
                    (
                        *(_cell(k, n) for k in by_grade),
                        _cell(len(worst), n),
                        _cell(int((worst >= 3).sum()), n),
                    ),
                ),
            )
        )
    return n, [row for *_, row in sorted(rows, key=lambda r: (r[0], r[1]))]


def _flag(value: Any, pending: str = "") -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return pending
    return str(value)


def _subject(row: Any) -> str:
    """The subject number: USUBJID without the leading ``STUDYID-``."""
    usubjid, studyid = str(row["USUBJID"]), str(row.get("STUDYID") or "")
    return usubjid.removeprefix(f"{studyid}-") if studyid else usubjid


def ae_listing(adae: pd.DataFrame, mask: pd.Series[bool]) -> list[AeListingRow]:
    """The ADAE rows ``mask`` selects, as listed (USUBJID, onset order)."""
    rows = []
    for _, r in adae.loc[mask].iterrows():
        rows.append(
            AeListingRow(
                usubjid=_subject(r),
                doselvl=_flag(r["DOSELVL"]),
                term=_term(r),
                onset=_flag(r["ASTDT"]),
                study_day=_flag(r["ASTDY"]),
                grade=_flag(r["ATOXGRN"]),
                serious=_flag(r["AESER"]),
                related=_flag(r["AREL"]),
                resolved=_flag(r["AENDT"], "not resolved"),
                dlt=_flag(r["DLTADJ"], "pending" if r["DLTCNDFL"] == "Y" else ""),
            )
        )
    return rows


def dlt_listing(adae: pd.DataFrame) -> list[AeListingRow]:
    """DLT candidates (``DLTCNDFL = Y``) and adjudicated AEs, with the committee's call."""
    return ae_listing(adae, (adae["DLTCNDFL"] == "Y") | adae["DLTADJ"].notna())


def serious_listing(adae: pd.DataFrame) -> list[AeListingRow]:
    """Every serious adverse event (``AESER = Y``)."""
    return ae_listing(adae, adae["AESER"] == "Y")


