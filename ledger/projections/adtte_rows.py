"""ADTTE rows of one subject: the time-to-event rows of :mod:`ledger.projections.endpoints` with
the dataset's context and the admiralonco source of each analysis date (SRCDOM/SRCVAR/SRCSEQ)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ledger.projections import endpoints
from ledger.projections.adrs_rows import ovr_seq
from ledger.projections.dataset_columns import _ADTTE_PARAMN
from ledger.projections.dataset_rows import RowContext
from ledger.projections.endpoints import TimeToEvent
from ledger.projections.recist import PD


def tte_row(
    context: RowContext,
    row: TimeToEvent,
    cohort: str,
    adrs: Sequence[Mapping[str, Any]],
    conflict: bool,
) -> dict[str, Any]:
    srcdom, srcvar, srcseq = _tte_source(row, adrs)
    return {
        "STUDYID": context.studyid,
        "USUBJID": row.usubjid,
        "ASEQ": None,
        "PARAMCD": row.paramcd,
        "PARAM": row.param,
        "PARAMN": _ADTTE_PARAMN.get(row.paramcd),
        "TRTP": context.trtp,
        "TRTA": context.trta,
        "STARTDT": row.startdt,
        "ADT": row.adt,
        "AVAL": row.aval,
        "CNSR": row.cnsr,
        "EVNTDESC": row.evntdesc,
        "CNSDTDSC": row.cnsdtdsc,
        "SRCDOM": srcdom,
        "SRCVAR": srcvar,
        "SRCSEQ": srcseq,
        "FASFL": "Y",
        "DOSELVL": context.doselvl,
        "COHORT": cohort,
        "DTCONFL": "Y" if conflict else None,
    }


_ASSESSMENT_DATES: Final = frozenset(
    {endpoints.LAST_ADEQUATE, endpoints.LAST_ADEQUATE_BEFORE_THERAPY, endpoints.RESPONSE_ORIGIN}
)


def _tte_source(
    row: TimeToEvent, adrs: Sequence[Mapping[str, Any]]
) -> tuple[str | None, str | None, int | None]:
    """SRCDOM, SRCVAR, SRCSEQ of an ADTTE row, the admiralonco event and censor sources.

    Progression and every censoring at a tumor assessment point at the ADRS OVR record of ADT;
    death at ADSL.DTHDT; censoring at C1D1 at ADSL.TRTSDT, at the last contact at
    ADSL.LSTALVDT; censoring at the data cutoff has no source record (all blank).
    """
    if row.cnsr == endpoints.EVENT:
        if row.evntdesc == endpoints.DEATH:
            return "ADSL", "DTHDT", None
        return "ADRS", "ADT", ovr_seq(adrs, row.adt, PD)
    if row.cnsdtdsc == endpoints.C1D1_DATE:
        return "ADSL", "TRTSDT", None
    if row.cnsdtdsc == endpoints.LAST_KNOWN_ALIVE:
        return "ADSL", "LSTALVDT", None
    if row.cnsdtdsc in _ASSESSMENT_DATES:
        seq = ovr_seq(adrs, row.adt, None)
        return ("ADRS", "ADT", seq) if seq is not None else (None, None, None)
    return None, None, None
