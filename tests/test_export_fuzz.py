"""What the ledger accepts, every export format writes: random accepted histories, csv and xpt."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.projections.define_xml import DEFINE_NAME, validate_define_xml
from ledger.projections.export import MANIFEST_NAME, export_datasets
from tests.builders import TRIAL_ID, Script, open_ledger

DAY0 = date(2024, 3, 1)
FORMATS = ("csv", "xpt")


@dataclass(frozen=True)
class Event:
    """One clinical fact of a subject's history, dated by its day from DAY0."""

    kind: str
    day: int
    text: str
    number: int


# Text a site could send: long, non-ASCII, blanks inside and at the ends (the schema allows up to
# 200 characters, so up to 800 UTF-8 bytes).
texts = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "Zs"]), min_size=1,
             max_size=200),
    st.integers(min_value=1, max_value=200).map(lambda n: "Ü" * n),
    st.integers(min_value=195, max_value=200).map(lambda n: "a" * (n - 1) + "€"),
    st.just("word " * 40),
).filter(lambda t: t.strip() != "")

events = st.builds(
    Event,
    kind=st.sampled_from(
        ["haic", "dose", "ae", "scan", "baseline", "died", "alive", "withdrawn", "discontinued",
         "therapy", "pd_scan"]
    ),
    day=st.integers(min_value=-30, max_value=400),
    text=texts,
    number=st.integers(min_value=0, max_value=5),
)

# Cohort A is the one open at the start and holds three: every enrollment is accepted.
subjects = st.lists(
    st.tuples(st.just("A"), st.integers(min_value=0, max_value=60),
              st.lists(events, max_size=12)),
    min_size=1,
    max_size=3,
)


def _envelopes(plan: list[tuple[str, int, list[Event]]]) -> list[dict[str, Any]]:
    """The submissions of a plan: each subject enrolled on its day, then its facts in any order."""
    script = Script()
    sent: list[dict[str, Any]] = []
    for index, (cohort, enrolled, history) in enumerate(plan, start=1):
        subject = f"01-{index:03d}"
        start = DAY0 + timedelta(days=enrolled)
        sent.append(script.enroll(subject, cohort, start))
        for n, event in enumerate(history):
            on = max(start + timedelta(days=event.day), date(2024, 1, 1))
            sent.append(script.envelope(event.kind, subject, on, {}))
            sent[-1].update(_typed(event, n))
    return sent


def _typed(event: Event, n: int) -> dict[str, Any]:
    """The type and data of one fact."""
    lesion = {"lesion_id": "L1", "diameter_mm": 10.0 * (event.number + 1), "nodal": False}
    kinds: dict[str, tuple[str, dict[str, Any]]] = {
        "haic": ("haic.administered",
                 {"cycle": event.number + 1, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000}),
        "dose": ("fruquintinib.dosed", {"dose_mg": 4}),
        "ae": ("adverse_event.reported",
               {"ae_id": f"AE-{n}", "term": event.text,
                "grade": max(1, event.number), "serious": event.number > 3,
                "related": event.number % 2 == 0}),
        "scan": ("tumor.assessed",
                 {"baseline": False, "target_lesions": [lesion], "non_target": "NONE",
                  "new_lesions": False, "investigator_response": "SD"}),
        "baseline": ("tumor.assessed",
                     {"baseline": True, "target_lesions": [lesion], "non_target": "NONE",
                      "new_lesions": False}),
        "pd_scan": ("tumor.assessed",
                    {"baseline": False, "target_lesions": [lesion], "non_target": "PD",
                     "new_lesions": True}),
        "died": ("subject.died", {"cause": event.text}),
        "alive": ("subject.alive", {}),
        "withdrawn": ("subject.withdrawn", {"reason": "lost_to_follow_up"}),
        "discontinued": ("treatment.discontinued", {"reason": "toxicity"}),
        "therapy": ("anticancer_therapy.started", {"therapy": event.text}),
    }
    kind, data = kinds[event.kind]
    return {"type": kind, "data": data}


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".xpt":
        frame, _ = pyreadstat.read_xport(str(path))
        return frame
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=subjects)
def test_every_accepted_history_exports_in_every_format(
    plan: list[tuple[str, int, list[Event]]],
) -> None:
    """Whatever was accepted exports as csv and xpt, and each file reads back with its rows."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        root = Path(scratch)
        ledger = open_ledger(root)
        with ledger:
            report = ledger.submit_many([json.dumps(e) for e in _envelopes(plan)])
            assert report.accepted >= len(plan)  # at least every enrollment
            entries = list(ledger.entries(TRIAL_ID))
        for fmt in FORMATS:
            out = root / fmt
            manifest = export_datasets(
                entries, as_of=None, cutoff=None, fmt=fmt, out=out, software_version="fuzz"
            )
            listed = {f.name: f.rows for f in manifest.files}
            for stem in ("adsl", "adtte", "adrs", "adae"):
                assert len(_read(out / f"{stem}.{fmt}")) == listed[f"{stem}.{fmt}"]
            assert listed[DEFINE_NAME] is None
            assert (out / MANIFEST_NAME).is_file()
        assert validate_define_xml((root / "xpt" / DEFINE_NAME).read_bytes()) == []
