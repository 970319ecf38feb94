"""The sites' side of the demo: each subject's clinical course as the submissions its site sends.

`SiteSimulator` draws a subject's course (doses, toxicities, assessments, follow-up, the odd
correction or late report) from a seeded random stream and queues each envelope on the calendar
day its site sends it (`PendingSubmission`, `due_submissions`); `ledger.demo.run_demo` feeds the
due ones to the ledger day by day.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ledger.aggregates.facts import ADVERSE_EVENT_REPORTED
from ledger.aggregates.protocol import EXPANSION
from ledger.schemas.catalogue import RACES
from ledger.schemas.submissions import wire_version

# True DLT probabilities the simulation draws from: C is too toxic, so the MTD lands below it.
TRUE_DLT = {"A": 0.05, "B": 0.15, "C": 0.55, EXPANSION: 0.15}
SITES = ("edc-site-01", "edc-site-02", "edc-site-03")
# Sites whose EDC keeps only the age at enrollment, not the birth date (§9 accepts either).
AGE_ONLY_SITES = frozenset({"edc-site-03"})

# The MedDRA coding (v27.0 preferred term, primary system organ class) of every verbatim term the
# demo's sites report, as a site's coder would send it.
MEDDRA: dict[str, tuple[str, str]] = {
    "hypertension": ("Hypertension", "Vascular disorders"),
    "palmar-plantar erythrodysesthesia": (
        "Palmar-plantar erythrodysaesthesia syndrome",
        "Skin and subcutaneous tissue disorders",
    ),
    "proteinuria": ("Proteinuria", "Renal and urinary disorders"),
    "ALT increased": ("Alanine aminotransferase increased", "Investigations"),
    "fatigue": ("Fatigue", "General disorders and administration site conditions"),
}
# Race as recorded at the (Chinese) sites: nearly everyone Asian, a few not reported.
RACE_WEIGHTS = {"ASIAN": 0.93, "WHITE": 0.02, "OTHER": 0.01, "NOT REPORTED": 0.04}
assert set(RACE_WEIGHTS) <= set(RACES)


@dataclass(order=True)
class PendingSubmission:
    """An envelope a site will send on `submit_on` (ordered by day, then by creation)."""

    submit_on: date
    sequence: int
    envelope: dict[str, Any] = field(compare=False)


class SiteSimulator:
    """Generates one subject's clinical course as submissions queued on the calendar.

    `baseline_rng` draws the baseline characteristics of `enrollment_data` (default: `rng`).
    """

    def __init__(
        self,
        rng: random.Random,
        trial_id: str,
        queue: list[PendingSubmission],
        *,
        baseline_rng: random.Random | None = None,
    ) -> None:
        self._rng = rng
        self._baseline_rng = baseline_rng or rng
        self._trial_id = trial_id
        self._queue = queue
        self._sequence = itertools.count()

    def enrollment_data(self, cohort: str, on: date, site: str) -> dict[str, Any]:
        """`subject.enrolled` data, version 2: the cohort and the subject's baseline (a birth
        date, or only the age at sites in AGE_ONLY_SITES); an adult eligible for the trial
        (ECOG 0-1), heights and weights typical of the population."""
        rng = self._baseline_rng
        age = min(78, max(28, round(rng.gauss(57, 9))))
        sex = "M" if rng.random() < 0.62 else "F"
        race = rng.choices(tuple(RACE_WEIGHTS), weights=tuple(RACE_WEIGHTS.values()))[0]
        ecog = 0 if rng.random() < 0.55 else 1
        height_cm = round(rng.gauss(169, 6) if sex == "M" else rng.gauss(158, 5.5), 1)
        weight_kg = round(rng.gauss(22.8, 3.0) * (height_cm / 100) ** 2, 1)
        # A birth day such that the subject is `age` whole years old on `on`.
        youngest = _years_before(on, age)
        born = youngest - timedelta(
            days=rng.randint(0, (youngest - _years_before(on, age + 1)).days - 1)
        )
        birth: dict[str, Any] = (
            {"age": age} if site in AGE_ONLY_SITES else {"birth_date": born.isoformat()}
        )
        return {
            "cohort": cohort,
            **birth,
            "sex": sex,
            "race": race,
            "ecog": ecog,
            "weight_kg": weight_kg,
            "height_cm": height_cm,
        }

    def envelope(
        self,
        kind: str,
        subject_id: str,
        on: date,
        data: dict[str, Any],
        *,
        submit_on: date | None = None,
        reason: str | None = None,
        site: str = SITES[0],
    ) -> dict[str, Any]:
        if kind == ADVERSE_EVENT_REPORTED and data.get("term") in MEDDRA:
            preferred_term, organ_class = MEDDRA[data["term"]]
            data = {**data, "meddra_pt": preferred_term, "meddra_soc": organ_class}
        envelope = {
            "event_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "type": kind,
            "schema_version": wire_version(kind, data),
            "trial_id": self._trial_id,
            "subject_id": subject_id,
            "occurred_on": on.isoformat(),
            "source": site,
            "entered_by": f"crc.{site[-2:]}",
            "reason": reason,
            "data": data,
        }
        pending = PendingSubmission(submit_on or on, next(self._sequence), envelope)
        heapq.heappush(self._queue, pending)
        return envelope

    def subject_course(
        self, subject_id: str, cohort: str, dose_mg: float, enrolled_on: date, end: date
    ) -> None:
        rng = self._rng
        # A subject is followed by the site that enrolled it (site NN sends subjects NN-...).
        site = SITES[(int(subject_id[:2]) - 1) % len(SITES)]
        put = self._put(subject_id, site, end)
        c1d1 = enrolled_on + timedelta(days=rng.randint(2, 5))
        lesions = {f"T{i}": float(rng.randint(15, 55)) for i in range(1, rng.randint(2, 4) + 1)}
        nodal = {"T1": False, "T2": rng.random() < 0.3, "T3": False}
        put(
            "tumor.assessed",
            c1d1 - timedelta(days=rng.randint(3, 20)),
            self._assessment(lesions, nodal, "NON_CR_NON_PD", baseline=True),
            submit_on=enrolled_on,
        )
        withdraws_early = rng.random() < 0.06
        has_dlt = not withdraws_early and rng.random() < TRUE_DLT[cohort]
        course = rng.choices(("responder", "stable", "progressor"), weights=(3, 4, 3))[0]
        progression_visit = {
            "responder": rng.randint(3, 7),
            "stable": rng.randint(2, 5),
            "progressor": rng.randint(1, 2),
        }[course]
        stop_treatment: date | None = None
        if withdraws_early:
            put(
                "subject.withdrawn",
                c1d1 + timedelta(days=rng.randint(5, 15)),
                {"reason": "consent_withdrawn"},
            )
            stop_treatment = c1d1 + timedelta(days=4)
        if has_dlt:
            onset = c1d1 + timedelta(days=rng.randint(6, 24))
            put(
                "adverse_event.reported",
                onset,
                {
                    "ae_id": "AE-01",
                    "term": rng.choice(
                        (
                            "hypertension",
                            "palmar-plantar erythrodysesthesia",
                            "proteinuria",
                            "ALT increased",
                        )
                    ),
                    "grade": 3,
                    "serious": rng.random() < 0.4,
                    "related": True,
                },
            )
            put("dlt.adjudicated", onset + timedelta(days=3), {"ae_id": "AE-01", "dlt": True})
            put("treatment.discontinued", onset + timedelta(days=2), {"reason": "toxicity"})
            stop_treatment = onset + timedelta(days=1)
        elif rng.random() < 0.6:
            onset = c1d1 + timedelta(days=rng.randint(3, 40))
            grade = rng.choice((1, 2, 2, 3))
            put(
                "adverse_event.reported",
                onset,
                {
                    "ae_id": "AE-01",
                    "term": "fatigue",
                    "grade": grade,
                    "serious": False,
                    "related": True,
                },
                submit_on=onset + timedelta(days=rng.randint(0, 9)),
            )
            if grade >= 3:
                put("dlt.adjudicated", onset + timedelta(days=10), {"ae_id": "AE-01", "dlt": False})
            put(
                "adverse_event.updated",
                onset + timedelta(days=14),
                {"ae_id": "AE-01", "resolved": True},
            )

        # Tumor assessments every 56 days until progression.
        progressed_on: date | None = None
        size = dict(lesions)
        for visit in itertools.count(1):
            assessed_on = c1d1 + timedelta(days=56 * visit + rng.randint(-5, 5))
            if assessed_on > end or (withdraws_early and visit >= 1):
                break
            factor = {"responder": 0.55, "stable": 0.95, "progressor": 1.0}[course]
            progressing = visit >= progression_visit
            for key, diameter in size.items():
                size[key] = round(diameter * (1.35 if progressing else factor), 1)
            new_lesions = progressing and rng.random() < 0.5
            envelope = put(
                "tumor.assessed",
                assessed_on,
                self._assessment(
                    size,
                    nodal,
                    "NON_CR_NON_PD",
                    new_lesions=new_lesions,
                    baseline_sum=sum(lesions.values()),
                ),
            )
            if visit == 1 and rng.random() < 0.15:
                # A transcription error caught at monitoring, corrected with a reason.
                wrong = dict(envelope["data"])
                envelope["data"] = {
                    **wrong,
                    "target_lesions": [
                        {**lesion, "diameter_mm": lesion["diameter_mm"] * 10}
                        for lesion in wrong["target_lesions"]
                    ],
                }
                put(
                    "record.corrected",
                    assessed_on,
                    {"target_event_id": envelope["event_id"], "data": wrong},
                    submit_on=assessed_on + timedelta(days=12),
                    reason="source data verification: diameters entered in mm×10",
                )
            if progressing:
                progressed_on = assessed_on
                break

        treatment_end = min(
            d
            for d in (stop_treatment, progressed_on, end, c1d1 + timedelta(days=28 * 12))
            if d is not None
        )
        if progressed_on is not None and stop_treatment is None:
            put(
                "treatment.discontinued",
                progressed_on + timedelta(days=1),
                {"reason": "progression"},
            )
        self._treat(put, c1d1, treatment_end, dose_mg)

        # Survival follow-up.
        last = treatment_end
        dies_on: date | None = None
        if progressed_on is not None:
            if rng.random() < 0.6:
                put(
                    "anticancer_therapy.started",
                    progressed_on + timedelta(days=rng.randint(10, 30)),
                    {"therapy": rng.choice(("regorafenib", "TAS-102", "TAS-102 + bevacizumab"))},
                )
            dies_on = progressed_on + timedelta(days=int(rng.expovariate(1 / 200)) + 20)
        elif rng.random() < 0.15:
            dies_on = c1d1 + timedelta(days=rng.randint(60, 600))
        if withdraws_early:
            return
        while True:
            last += timedelta(days=rng.randint(75, 100))
            if dies_on is not None and last >= dies_on:
                put(
                    "subject.died",
                    dies_on,
                    {"cause": "disease progression"},
                    submit_on=dies_on + timedelta(days=rng.randint(1, 20)),
                )
                return
            if last > end or last > c1d1 + timedelta(days=730):
                return
            put("subject.alive", last, {})

    def _treat(self, put: Any, c1d1: date, until: date, dose_mg: float) -> None:
        rng = self._rng
        for cycle in itertools.count(1):
            day1 = c1d1 + timedelta(days=28 * (cycle - 1) + (rng.randint(0, 3) if cycle > 1 else 0))
            if day1 > until:
                return
            put(
                "haic.administered",
                day1,
                {"cycle": cycle, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000},
            )
            for offset in range(21):
                taken_on = day1 + timedelta(days=offset)
                if taken_on > until:
                    return
                if rng.random() < 0.03:
                    continue  # a missed capsule: nothing to report
                put("fruquintinib.dosed", taken_on, {"dose_mg": dose_mg})
            if rng.random() < 0.04:
                # A dose taken in the off week: it happened, so it is recorded and flagged.
                put("fruquintinib.dosed", day1 + timedelta(days=23), {"dose_mg": dose_mg})

    def _put(self, subject_id: str, site: str, end: date) -> Any:
        def put(
            kind: str,
            on: date,
            data: dict[str, Any],
            *,
            submit_on: date | None = None,
            reason: str | None = None,
        ) -> dict[str, Any]:
            when = max(submit_on or on, on)
            if when > end:
                return {"event_id": None, "data": data}
            return self.envelope(
                kind, subject_id, on, data, submit_on=when, reason=reason, site=site
            )

        return put

    def _assessment(
        self,
        lesions: dict[str, float],
        nodal: dict[str, bool],
        non_target: str,
        *,
        baseline: bool = False,
        new_lesions: bool = False,
        baseline_sum: float | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "baseline": baseline,
            "target_lesions": [
                {"lesion_id": key, "diameter_mm": value, "nodal": nodal.get(key, False)}
                for key, value in lesions.items()
            ],
            "non_target": "PD" if new_lesions and self._rng.random() < 0.3 else non_target,
            "new_lesions": new_lesions,
        }
        if not baseline and baseline_sum:
            change = sum(lesions.values()) / baseline_sum - 1
            call = "PD" if new_lesions or change >= 0.2 else "PR" if change <= -0.3 else "SD"
            if self._rng.random() < 0.05:
                call = {"PD": "SD", "PR": "SD", "SD": "PR"}[call]  # the investigator disagrees
            data["investigator_response"] = call
        return data


def _years_before(on: date, years: int) -> date:
    """The same calendar day `years` earlier (28 February for a 29 February)."""
    try:
        return on.replace(year=on.year - years)
    except ValueError:
        return on.replace(year=on.year - years, day=28)


def due_submissions(queue: list[PendingSubmission], today: date) -> Iterator[dict[str, Any]]:
    """Take from the queue (a heap) every envelope due by `today`, in order."""
    while queue and queue[0].submit_on <= today:
        yield heapq.heappop(queue).envelope
