"""The data behind each figure of the report, read from the analysis datasets alone.

Every value here is a dataset variable or a difference of two dataset dates, so a reviewer can put
a finger on the row a bar, a line or a marker came from:

* waterfall: per subject, the lowest ADRS ``PCHGBL`` among analysed visits (``PARAMCD = OVR``,
  ``ANL01FL = ANL02FL = Y``: on or after C1D1, up to and including the first progression), coloured
  by the subject's confirmed best overall response (``PARAMCD = CBOR``);
* spider: per subject, ``PCHGBL`` of every analysed visit (``ANL01FL = Y``) against weeks since
  C1D1 (``(ADY − 1) / 7``), starting from 0 % at C1D1;
* swimmer: per treated subject (``SAFFL = Y``), a lane of ``TRTDURD`` days from ADSL, with the
  analysed CR/PR visits and the first analysed PD from ADRS, death (``DTHDT``) and an arrow when
  ``EOTSTT = ONGOING``; days counted from ``TRTSDT`` (day 0);
* escalation timeline: per treated subject, the cycle-1 DLT window from ``TRTSDT`` for the
  protocol's ``dlt_window_days``, its evaluability (``DLTEVLFL``; ``N`` = replaced) and the onset
  of each adjudicated DLT (ADAE ``DLTADJ = Y``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import pandas as pd

__all__ = [
    "DltLane",
    "SpiderLine",
    "SwimmerLane",
    "WaterfallBar",
    "dlt_lanes",
    "spider_lines",
    "swimmer_lanes",
    "waterfall_bars",
]

_ANALYSED: Final = "Y"


@dataclass(frozen=True, slots=True)
class WaterfallBar:
    usubjid: str
    subjid: str
    doselvl: str | None
    best_pchg: float
    """Best (lowest) percent change from baseline in the sum of target diameters."""
    response: str
    """Confirmed best overall response (ADRS CBOR AVALC); NE when the subject has none."""


@dataclass(frozen=True, slots=True)
class SpiderLine:
    usubjid: str
    subjid: str
    doselvl: str | None
    weeks: tuple[float, ...]
    pchg: tuple[float, ...]
    """Starts at (0 weeks, 0 %): the baseline sum is the reference."""


@dataclass(frozen=True, slots=True)
class SwimmerLane:
    usubjid: str
    subjid: str
    doselvl: str | None
    duration_days: int
    """ADSL TRTDURD: TRTEDT − TRTSDT + 1."""
    ongoing: bool
    responses: tuple[tuple[int, str], ...]
    """(days since C1D1, CR or PR) of each analysed response visit."""
    progression_day: int | None
    death_day: int | None


@dataclass(frozen=True, slots=True)
class DltLane:
    usubjid: str
    subjid: str
    cohort: str
    doselvl: str | None
    start: date
    window_end: date
    evaluable: bool | None
    """ADSL DLTEVLFL: None while the window is open; False: not evaluable, replaced."""
    dlt_onsets: tuple[date, ...]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _date(value: Any) -> date | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _subjid(usubjid: str, adsl: pd.DataFrame | None = None) -> str:
    if adsl is not None and "SUBJID" in adsl.columns:
        match = adsl.loc[adsl["USUBJID"] == usubjid, "SUBJID"]
        if len(match) and _text(match.iloc[0]):
            return str(match.iloc[0])
    return usubjid


def _ovr(adrs: pd.DataFrame) -> pd.DataFrame:
    return adrs.loc[(adrs["PARAMCD"] == "OVR") & (adrs["ANL01FL"] == _ANALYSED)]


def waterfall_bars(adrs: pd.DataFrame, adsl: pd.DataFrame) -> tuple[WaterfallBar, ...]:
    """One bar per subject with a post-baseline target sum; tallest first, then by USUBJID."""
    visits = _ovr(adrs)
    visits = visits.loc[visits["ANL02FL"] == _ANALYSED]
    cbor = {
        str(r["USUBJID"]): _text(r["AVALC"])
        for _, r in adrs.loc[adrs["PARAMCD"] == "CBOR"].iterrows()
    }
    bars = []
    for usubjid, rows in visits.groupby("USUBJID", sort=True):
        changes = [c for c in (_number(v) for v in rows["PCHGBL"]) if c is not None]
        if not changes:
            continue
        key = str(usubjid)
        bars.append(
            WaterfallBar(
                usubjid=key,
                subjid=_subjid(key, adsl),
                doselvl=_text(rows["DOSELVL"].iloc[0]),
                best_pchg=min(changes),
                response=cbor.get(key) or "NE",
            )
        )
    return tuple(sorted(bars, key=lambda b: (-b.best_pchg, b.usubjid)))


def spider_lines(adrs: pd.DataFrame, adsl: pd.DataFrame) -> tuple[SpiderLine, ...]:
    """One line per subject with a post-baseline target sum, in USUBJID order."""
    lines = []
    for usubjid, rows in _ovr(adrs).groupby("USUBJID", sort=True):
        points = sorted(
            ((int(ady) - 1) / 7, change)
            for ady, change in zip(rows["ADY"], (_number(v) for v in rows["PCHGBL"]), strict=True)
            if change is not None and ady is not pd.NA and ady is not None
        )
        if not points:
            continue
        key = str(usubjid)
        lines.append(
            SpiderLine(
                usubjid=key,
                subjid=_subjid(key, adsl),
                doselvl=_text(rows["DOSELVL"].iloc[0]),
                weeks=(0.0, *(p[0] for p in points)),
                pchg=(0.0, *(p[1] for p in points)),
            )
        )
    return tuple(lines)


def swimmer_lanes(
    adsl: pd.DataFrame, adrs: pd.DataFrame, level_order: Sequence[str] = ()
) -> tuple[SwimmerLane, ...]:
    """One lane per treated subject: by dose level (``level_order`` first), longest first."""
    visits = _ovr(adrs)
    lanes = []
    for _, subject in adsl.loc[adsl["SAFFL"] == "Y"].iterrows():
        start = _date(subject["TRTSDT"])
        duration = _number(subject["TRTDURD"])
        if start is None or duration is None:
            continue
        usubjid = str(subject["USUBJID"])
        own = visits.loc[visits["USUBJID"] == usubjid]
        dated = sorted(
            (d, str(r))
            for d, r in zip((_date(v) for v in own["ADT"]), own["AVALC"], strict=True)
            if d is not None
        )
        responses = tuple(((d - start).days, r) for d, r in dated if r in ("CR", "PR"))
        progression = next(((d - start).days for d, r in dated if r == "PD"), None)
        death = _date(subject["DTHDT"])
        lanes.append(
            SwimmerLane(
                usubjid=usubjid,
                subjid=_text(subject["SUBJID"]) or usubjid,
                doselvl=_text(subject["DOSELVL"]),
                duration_days=int(duration),
                ongoing=subject["EOTSTT"] == "ONGOING",
                responses=responses,
                progression_day=progression,
                death_day=None if death is None else (death - start).days,
            )
        )
    rank = {level: index for index, level in enumerate(level_order)}
    return tuple(
        sorted(
            lanes,
            key=lambda lane: (
                rank.get(lane.doselvl or "", len(rank)),
                lane.doselvl or "",
                -lane.duration_days,
                lane.usubjid,
            ),
        )
    )


def dlt_lanes(
    adsl: pd.DataFrame, adae: pd.DataFrame, window_days: int
) -> tuple[DltLane, ...]:
    """One lane per treated subject: the DLT window from C1D1, evaluability, DLT onsets."""
    dlts = adae.loc[adae["DLTADJ"] == "Y"]
    lanes = []
    for _, subject in adsl.iterrows():
        start = _date(subject["TRTSDT"])
        if start is None:
            continue
        usubjid = str(subject["USUBJID"])
        flag = _text(subject["DLTEVLFL"])
        onsets = sorted(
            d for d in (_date(v) for v in dlts.loc[dlts["USUBJID"] == usubjid, "ASTDT"])
            if d is not None
        )
        lanes.append(
            DltLane(
                usubjid=usubjid,
                subjid=_text(subject["SUBJID"]) or usubjid,
                cohort=_text(subject["COHORT"]) or "",
                doselvl=_text(subject["DOSELVL"]),
                start=start,
                window_end=start + timedelta(days=window_days - 1),
                evaluable=None if flag is None else flag == "Y",
                dlt_onsets=tuple(onsets),
            )
        )
    return tuple(sorted(lanes, key=lambda lane: (lane.start, lane.usubjid)))
