"""The Trial aggregate: one trial's whole history, and the escalation rules it enforces.

One aggregate per trial, on purpose: enrollment limits, DLT evaluability and the 3+3 decisions all
span cohorts and subjects, so they need one consistency boundary. The aggregate's version is the
contract's gapless ledger `position`.

Commands validate first and raise `SubmissionRejectedError` before anything is triggered, so a
rejection leaves the aggregate exactly as it was. Event `apply` methods only assign state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.aggregates.escalation import (
    Decision,
    DeclareMtd,
    DeEscalate,
    Escalate,
    Expand,
    LevelCount,
    StopForToxicity,
    cohort_is_decidable,
    decide,
)
from ledger.aggregates.facts import (
    ADVERSE_EVENT_REPORTED,
    ADVERSE_EVENT_UPDATED,
    AMENDMENT_TYPES,
    DLT_ADJUDICATED,
    DOSE_MODIFIED,
    FRUQUINTINIB_DOSED,
    HAIC_ADMINISTERED,
    RECORD_CORRECTED,
    RECORD_VOIDED,
    SUBJECT_ENROLLED,
    Fact,
    FactBook,
    Submission,
)
from ledger.aggregates.protocol import ProtocolDefinition
from ledger.aggregates.rejections import ReasonCode, SubmissionRejectedError
from ledger.aggregates.safety import (
    ADVERSE_EVENT_TYPES,
    AdverseEvent,
    DltWindow,
    adverse_events,
    assess_deviations,
    assess_dlt_window,
)

EXPANSION = "EXPANSION"


def trial_aggregate_id(trial_id: str) -> UUID:
    """Derived from the registry id, so a redelivered `trial.opened` cannot open a second trial."""
    return uuid5(NAMESPACE_URL, f"trial-ledger:trial:{trial_id}")


class Stage(StrEnum):
    ESCALATION = "escalation"
    EXPANSION = "expansion"
    ENROLLMENT_COMPLETE = "enrollment_complete"
    STOPPED = "stopped"


class CohortState(StrEnum):
    NOT_OPEN = "not_open"
    OPEN = "open"
    CLOSED = "closed"


class Outcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class _Level:
    name: str
    dose_mg: float
    state: CohortState = CohortState.NOT_OPEN
    slots: int = 0
    subjects: list[str] = field(default_factory=list)
    counts_at_decision: LevelCount | None = None


@dataclass(slots=True)
class _Subject:
    cohort: str
    dose_mg: float
    flagged: set[str] = field(default_factory=set)
    window: DltWindow | None = None

    @property
    def window_closed(self) -> bool:
        return self.window is not None and self.window.is_closed

    @property
    def replaced(self) -> bool:
        """Closed without being DLT-evaluable: does not count toward 3 or 6."""
        return self.window_closed and self.window is not None and not self.window.evaluable


class Trial(Aggregate):
    TOPIC = "trial-ledger:Trial"

    class Event(Aggregate.Event):
        """Every recorded event carries the contract's §3 fields."""

        TOPIC = "trial-ledger:Trial.Event"
        ledger_type: ClassVar[str] = ""
        subject_id: str | None
        occurred_on: date | None
        data: dict[str, Any]
        event_id: str | None
        source: str | None
        entered_by: str | None
        reason: str | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Trial)
            self.apply_to(aggregate)

        def apply_to(self, trial: Trial) -> None:
            """Decisions whose effect is only to be on the record assign nothing."""

        def submission(self, trial_id: str) -> Submission:
            assert self.event_id is not None and self.occurred_on is not None
            return Submission(
                event_id=self.event_id,
                type=self.ledger_type,
                trial_id=trial_id,
                subject_id=self.subject_id,
                occurred_on=self.occurred_on,
                source=self.source or "",
                entered_by=self.entered_by or "",
                reason=self.reason,
                data=self.data,
            )

        def remember(self, trial: Trial) -> None:
            """Keep the submission's identity for idempotency and for validating amendments."""
            assert self.event_id is not None
            trial._fingerprints[self.event_id] = self.submission(trial.trial_id).fingerprint
            trial._event_types[self.event_id] = self.ledger_type
            trial._event_sources[self.event_id] = self.source or ""

    class Opened(Event, Aggregate.Created):
        TOPIC = "trial-ledger:Trial.Opened"
        ledger_type = "trial.opened"

    # --- submissions (contract §2) -----------------------------------------------------------

    class FactRecorded(Event):
        TOPIC = "trial-ledger:Trial.FactRecorded"

        def apply_to(self, trial: Trial) -> None:
            assert self.event_id is not None and self.occurred_on is not None
            self.remember(trial)
            trial._facts.add(
                Fact(
                    event_id=self.event_id,
                    type=self.ledger_type,
                    subject_id=self.subject_id,
                    occurred_on=self.occurred_on,
                    data=self.data,
                    position=self.originator_version,
                )
            )

    class SubjectEnrolled(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectEnrolled"
        ledger_type = "subject.enrolled"

        def apply_to(self, trial: Trial) -> None:
            super().apply_to(trial)
            assert self.subject_id is not None
            cohort = str(self.data["cohort"])
            trial._subjects[self.subject_id] = _Subject(
                cohort=cohort, dose_mg=trial._dose_of_cohort(cohort)
            )
            trial._cohort_subjects(cohort).append(self.subject_id)

    class HaicAdministered(FactRecorded):
        TOPIC = "trial-ledger:Trial.HaicAdministered"
        ledger_type = "haic.administered"

    class FruquintinibDosed(FactRecorded):
        TOPIC = "trial-ledger:Trial.FruquintinibDosed"
        ledger_type = "fruquintinib.dosed"

    class DoseModified(FactRecorded):
        TOPIC = "trial-ledger:Trial.DoseModified"
        ledger_type = "dose.modified"

    class AdverseEventReported(FactRecorded):
        TOPIC = "trial-ledger:Trial.AdverseEventReported"
        ledger_type = "adverse_event.reported"

    class AdverseEventUpdated(FactRecorded):
        TOPIC = "trial-ledger:Trial.AdverseEventUpdated"
        ledger_type = "adverse_event.updated"

    class DltAdjudicated(FactRecorded):
        TOPIC = "trial-ledger:Trial.DltAdjudicated"
        ledger_type = "dlt.adjudicated"

    class TumorAssessed(FactRecorded):
        TOPIC = "trial-ledger:Trial.TumorAssessed"
        ledger_type = "tumor.assessed"

    class AnticancerTherapyStarted(FactRecorded):
        TOPIC = "trial-ledger:Trial.AnticancerTherapyStarted"
        ledger_type = "anticancer_therapy.started"

    class TreatmentDiscontinued(FactRecorded):
        TOPIC = "trial-ledger:Trial.TreatmentDiscontinued"
        ledger_type = "treatment.discontinued"

    class SubjectKnownAlive(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectKnownAlive"
        ledger_type = "subject.alive"

    class SubjectDied(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectDied"
        ledger_type = "subject.died"

    class SubjectWithdrawn(FactRecorded):
        TOPIC = "trial-ledger:Trial.SubjectWithdrawn"
        ledger_type = "subject.withdrawn"

    class RecordCorrected(Event):
        TOPIC = "trial-ledger:Trial.RecordCorrected"
        ledger_type = "record.corrected"

        def apply_to(self, trial: Trial) -> None:
            self.remember(trial)
            occurred_on = self.data.get("occurred_on")
            trial._facts.correct(
                str(self.data["target_event_id"]),
                self.data["data"],
                date.fromisoformat(occurred_on) if occurred_on else None,
            )

    class RecordVoided(Event):
        TOPIC = "trial-ledger:Trial.RecordVoided"
        ledger_type = "record.voided"

        def apply_to(self, trial: Trial) -> None:
            self.remember(trial)
            trial._facts.void(str(self.data["target_event_id"]))

    # --- the ledger's own decisions (contract §3) ----------------------------------------------

    class CohortOpened(Event):
        TOPIC = "trial-ledger:Trial.CohortOpened"
        ledger_type = "cohort.opened"

        def apply_to(self, trial: Trial) -> None:
            level = trial._levels[int(self.data["level"])]
            level.state = CohortState.OPEN
            level.slots = int(self.data["slots"])

    class CohortExpanded(Event):
        TOPIC = "trial-ledger:Trial.CohortExpanded"
        ledger_type = "cohort.expanded"

        def apply_to(self, trial: Trial) -> None:
            level = trial._levels[int(self.data["level"])]
            level.state = CohortState.OPEN
            level.slots = int(self.data["slots"])

    class CohortClosed(Event):
        TOPIC = "trial-ledger:Trial.CohortClosed"
        ledger_type = "cohort.closed"

        def apply_to(self, trial: Trial) -> None:
            if self.data["cohort"] == EXPANSION:
                trial.stage = Stage.ENROLLMENT_COMPLETE
                return
            level = trial._levels[int(self.data["level"])]
            level.state = CohortState.CLOSED
            level.counts_at_decision = LevelCount(
                evaluable=int(self.data["evaluable"]), dlts=int(self.data["dlts"])
            )

    class DoseEscalated(Event):
        TOPIC = "trial-ledger:Trial.DoseEscalated"
        ledger_type = "dose.escalated"

        def apply_to(self, trial: Trial) -> None:
            trial.current_level = int(self.data["to_level"])

    class DoseDeescalated(Event):
        TOPIC = "trial-ledger:Trial.DoseDeescalated"
        ledger_type = "dose.deescalated"

        def apply_to(self, trial: Trial) -> None:
            trial.current_level = int(self.data["to_level"])

    class MtdDeclared(Event):
        TOPIC = "trial-ledger:Trial.MtdDeclared"
        ledger_type = "mtd.declared"

        def apply_to(self, trial: Trial) -> None:
            trial.mtd_level = int(self.data["level"])
            trial.stage = Stage.ENROLLMENT_COMPLETE

    class ExpansionOpened(Event):
        TOPIC = "trial-ledger:Trial.ExpansionOpened"
        ledger_type = "expansion.opened"

        def apply_to(self, trial: Trial) -> None:
            trial.stage = Stage.EXPANSION

    class TrialStopped(Event):
        TOPIC = "trial-ledger:Trial.TrialStopped"
        ledger_type = "trial.stopped"

        def apply_to(self, trial: Trial) -> None:
            trial.stage = Stage.STOPPED

    class DltCandidateFlagged(Event):
        TOPIC = "trial-ledger:Trial.DltCandidateFlagged"
        ledger_type = "dlt.candidate_flagged"

        def apply_to(self, trial: Trial) -> None:
            assert self.subject_id is not None
            trial._subjects[self.subject_id].flagged.add(str(self.data["ae_id"]))

    class DltWindowClosed(Event):
        TOPIC = "trial-ledger:Trial.DltWindowClosed"
        ledger_type = "dlt_window.closed"

        def apply_to(self, trial: Trial) -> None:
            assert self.subject_id is not None
            trial._subjects[self.subject_id].window = _window_from_data(self.data)

    class DltWindowRevised(Event):
        TOPIC = "trial-ledger:Trial.DltWindowRevised"
        ledger_type = "dlt_window.revised"

        def apply_to(self, trial: Trial) -> None:
            assert self.subject_id is not None
            trial._subjects[self.subject_id].window = _window_from_data(self.data)

    class ProtocolDeviationFlagged(Event):
        TOPIC = "trial-ledger:Trial.ProtocolDeviationFlagged"
        ledger_type = "protocol.deviation"

    class CohortReevaluated(Event):
        TOPIC = "trial-ledger:Trial.CohortReevaluated"
        ledger_type = "cohort.reevaluated"

        def apply_to(self, trial: Trial) -> None:
            after = self.data["after"]
            trial._levels[int(self.data["level"])].counts_at_decision = LevelCount(
                evaluable=int(after["evaluable"]), dlts=int(after["dlts"])
            )

    # --- construction ---------------------------------------------------------------------------

    def __init__(
        self,
        subject_id: str | None,
        occurred_on: date | None,
        data: dict[str, Any],
        event_id: str | None,
        source: str | None,
        entered_by: str | None,
        reason: str | None,
    ) -> None:
        self.protocol = ProtocolDefinition.from_mapping(data["protocol"])
        self.trial_id = self.protocol.trial_id
        self.stage = Stage.ESCALATION
        self.current_level = 0
        self.mtd_level: int | None = None
        self._levels = [
            _Level(name=lv.name, dose_mg=lv.dose_mg) for lv in self.protocol.dose_levels
        ]
        self._expansion_subjects: list[str] = []
        self._subjects: dict[str, _Subject] = {}
        self._facts = FactBook()
        self._fingerprints: dict[str, str] = {}
        self._event_types: dict[str, str] = {}
        self._event_sources: dict[str, str] = {}

    @classmethod
    def open(
        cls,
        protocol: ProtocolDefinition,
        *,
        source: str,
        entered_by: str,
        recorded_at: datetime,
        reason: str | None = None,
    ) -> Trial:
        """Open the trial under a protocol; the first cohort opens with it."""
        trial = cls._create(
            cls.Opened,
            id=trial_aggregate_id(protocol.trial_id),
            timestamp=recorded_at,
            subject_id=None,
            occurred_on=None,
            data={"protocol": protocol.to_mapping()},
            event_id=None,
            source=source,
            entered_by=entered_by,
            reason=reason,
        )
        trial._decide(
            cls.CohortOpened,
            recorded_at,
            None,
            {
                "cohort": protocol.dose_levels[0].name,
                "level": 0,
                "dose_mg": protocol.dose_levels[0].dose_mg,
                "slots": protocol.escalation.cohort_size,
            },
            reason="first dose level opens with the trial",
        )
        return trial

    # --- the one command integrators drive ----------------------------------------------------

    def record(self, submission: Submission, recorded_at: datetime) -> Outcome:
        """Record a submission and every decision it leads to, or refuse it with a reason."""
        if submission.trial_id != self.trial_id:
            raise SubmissionRejectedError(
                ReasonCode.UNKNOWN_TRIAL,
                f"this ledger holds trial {self.trial_id}, not {submission.trial_id}",
            )
        known = self._fingerprints.get(submission.event_id)
        if known is not None:
            if known == submission.fingerprint:
                return Outcome.DUPLICATE
            raise SubmissionRejectedError(
                ReasonCode.EVENT_ID_CONFLICT,
                f"event {submission.event_id} was already recorded with different content; "
                "send a record.corrected to change it",
            )
        if submission.occurred_on > recorded_at.date():
            raise SubmissionRejectedError(
                ReasonCode.OCCURRED_IN_FUTURE,
                f"occurred_on {submission.occurred_on} is after today ({recorded_at.date()})",
            )
        self._check(submission)
        self.trigger_event(
            _EVENT_CLASSES[submission.type],
            timestamp=recorded_at,
            subject_id=submission.subject_id,
            occurred_on=submission.occurred_on,
            data=dict(submission.data),
            event_id=submission.event_id,
            source=submission.source,
            entered_by=submission.entered_by,
            reason=submission.reason,
        )
        self._follow_up(submission, recorded_at)
        return Outcome.RECORDED

    def target_type(self, event_id: str) -> str | None:
        """The type of a recorded submission, for validating a correction of it at the edge."""
        return self._event_types.get(event_id)

    def target_source(self, event_id: str) -> str | None:
        """The system that submitted a recorded event: only it may correct or void the record."""
        return self._event_sources.get(event_id)

    def target_subject(self, event_id: str) -> str | None:
        fact = self._facts.get(event_id)
        return fact.subject_id if fact else None

    # --- validation -----------------------------------------------------------------------------

    def _check(self, submission: Submission) -> None:
        if submission.type == SUBJECT_ENROLLED:
            self._check_enrollment(submission)
            return
        if submission.type in AMENDMENT_TYPES:
            self._check_amendment(submission)
            return
        subject_id = submission.subject_id
        if subject_id is None or subject_id not in self._subjects:
            raise SubmissionRejectedError(
                ReasonCode.SUBJECT_NOT_ENROLLED,
                f"subject {subject_id} is not enrolled in {self.trial_id}; "
                "send subject.enrolled first",
            )
        ae_id = submission.data.get("ae_id")
        if submission.type == ADVERSE_EVENT_REPORTED:
            if ae_id in self._reported_ae_ids(subject_id):
                raise SubmissionRejectedError(
                    ReasonCode.ADVERSE_EVENT_DUPLICATE,
                    f"adverse event {ae_id} of subject {subject_id} was already reported; "
                    "send adverse_event.updated instead",
                )
        elif submission.type in (
            ADVERSE_EVENT_UPDATED,
            DLT_ADJUDICATED,
        ) and ae_id not in self._reported_ae_ids(subject_id):
            raise SubmissionRejectedError(
                ReasonCode.ADVERSE_EVENT_UNKNOWN,
                f"subject {subject_id} has no adverse event {ae_id}",
            )

    def _check_enrollment(self, submission: Submission) -> None:
        subject_id = submission.subject_id
        cohort = str(submission.data["cohort"])
        if subject_id in self._subjects:
            raise SubmissionRejectedError(
                ReasonCode.SUBJECT_ALREADY_ENROLLED,
                f"subject {subject_id} is already enrolled in cohort "
                f"{self._subjects[subject_id].cohort}",
            )
        if self.stage is Stage.STOPPED:
            raise SubmissionRejectedError(
                ReasonCode.TRIAL_STOPPED,
                f"{self.trial_id} stopped for toxicity: no tolerable dose; enrollment is closed",
            )
        if len(self._subjects) >= self.protocol.max_subjects:
            raise SubmissionRejectedError(
                ReasonCode.ENROLLMENT_COMPLETE,
                f"{self.trial_id} has enrolled its {self.protocol.max_subjects} subjects",
            )
        if cohort == EXPANSION:
            if self.stage is not Stage.EXPANSION:
                raise SubmissionRejectedError(
                    ReasonCode.COHORT_NOT_OPEN,
                    f"the expansion cohort opens once the MTD is declared; {self._open_hint()}",
                )
            return
        index = self.protocol.level_index(cohort)
        if index is None:
            raise SubmissionRejectedError(
                ReasonCode.COHORT_NOT_OPEN, f"there is no cohort {cohort}; {self._open_hint()}"
            )
        level = self._levels[index]
        if level.state is not CohortState.OPEN or self.stage is not Stage.ESCALATION:
            raise SubmissionRejectedError(
                ReasonCode.COHORT_NOT_OPEN, f"cohort {cohort} is not open; {self._open_hint()}"
            )
        if self._occupied(level) >= level.slots:
            raise SubmissionRejectedError(
                ReasonCode.COHORT_FULL,
                f"cohort {cohort} has all {level.slots} places taken; more open only after "
                "its subjects are DLT-evaluable and the 3+3 rules allow it",
            )

    def _check_amendment(self, submission: Submission) -> None:
        target = str(submission.data["target_event_id"])
        if self._facts.is_voided(target):
            raise SubmissionRejectedError(
                ReasonCode.TARGET_ALREADY_VOIDED, f"event {target} was already voided"
            )
        target_type = self._event_types.get(target)
        fact = self._facts.get(target)
        if target_type is None or (fact is None and target_type not in AMENDMENT_TYPES):
            raise SubmissionRejectedError(
                ReasonCode.TARGET_NOT_FOUND, f"no recorded event {target} in {self.trial_id}"
            )
        if target_type in AMENDMENT_TYPES or target_type == SUBJECT_ENROLLED:
            raise SubmissionRejectedError(
                ReasonCode.TARGET_NOT_CORRECTABLE,
                f"event {target} is a {target_type}: it cannot be corrected or voided"
                + ("; withdraw the subject instead" if target_type == SUBJECT_ENROLLED else ""),
            )
        assert fact is not None
        if submission.subject_id is not None and submission.subject_id != fact.subject_id:
            raise SubmissionRejectedError(
                ReasonCode.TARGET_NOT_FOUND,
                f"event {target} belongs to subject {fact.subject_id}, not {submission.subject_id}",
            )

    def _occupied(self, level: _Level) -> int:
        return sum(1 for s in level.subjects if not self._subjects[s].replaced)

    def open_cohort(self) -> str | None:
        """The cohort a new subject could enter right now, or None while enrollment waits."""
        if len(self._subjects) >= self.protocol.max_subjects:
            return None
        if self.stage is Stage.EXPANSION:
            return EXPANSION
        if self.stage is Stage.ESCALATION:
            level = self._levels[self.current_level]
            if level.state is CohortState.OPEN and self._occupied(level) < level.slots:
                return level.name
        return None

    def _open_hint(self) -> str:
        if self.stage is Stage.EXPANSION:
            return "enroll into EXPANSION"
        open_levels = [lv.name for lv in self._levels if lv.state is CohortState.OPEN]
        if self.stage is Stage.ESCALATION and open_levels:
            return f"cohort {open_levels[0]} is open"
        return f"the trial is in stage {self.stage.value}"

    def _adverse_events(self, subject_id: str) -> dict[str, AdverseEvent]:
        return adverse_events(self._facts.of_subject(subject_id, ADVERSE_EVENT_TYPES))

    def _reported_ae_ids(self, subject_id: str) -> set[str]:
        return {
            str(f.data["ae_id"])
            for f in self._facts.of_subject(subject_id, (ADVERSE_EVENT_REPORTED,))
        }

    # --- consequences -------------------------------------------------------------------------

    def _follow_up(self, submission: Submission, recorded_at: datetime) -> None:
        subject_id = submission.subject_id
        fact = self._current_fact_for(submission)
        if subject_id is None and fact is not None:
            subject_id = fact.subject_id
        if subject_id is None or subject_id not in self._subjects:
            return
        on = submission.occurred_on
        subject = self._subjects[subject_id]
        if (
            fact is not None
            and submission.type != RECORD_VOIDED
            and fact.type in (FRUQUINTINIB_DOSED, HAIC_ADMINISTERED)
        ):
            treatment = self._facts.of_subject(subject_id, (HAIC_ADMINISTERED, DOSE_MODIFIED))
            for deviation in assess_deviations(fact, treatment, subject.dose_mg, self.protocol):
                self._decide(
                    Trial.ProtocolDeviationFlagged,
                    recorded_at,
                    on,
                    {
                        "code": deviation.code,
                        "message": deviation.message,
                        "target_event_id": fact.event_id,
                    },
                    subject_id=subject_id,
                    reason=deviation.message,
                )
        if _window_may_change(subject, submission):
            self._reassess_window(subject_id, recorded_at, on)
        self._decide_escalation(recorded_at, on)
        self._reevaluate_closed_cohorts(recorded_at, on)
        self._close_expansion_when_full(recorded_at, on)

    def _current_fact_for(self, submission: Submission) -> Fact | None:
        if submission.type in (RECORD_CORRECTED, RECORD_VOIDED):
            target = str(submission.data["target_event_id"])
            return self._facts.get(target) if submission.type == RECORD_CORRECTED else None
        return self._facts.get(submission.event_id)

    def _reassess_window(self, subject_id: str, recorded_at: datetime, on: date) -> None:
        subject = self._subjects[subject_id]
        window = assess_dlt_window(self._facts, subject_id, self.protocol)
        for ae_id in sorted(window.candidates - subject.flagged):
            ae = self._adverse_events(subject_id)[ae_id]
            self._decide(
                Trial.DltCandidateFlagged,
                recorded_at,
                on,
                {
                    "ae_id": ae_id,
                    "term": ae.term,
                    "grade": ae.worst_grade,
                    "onset": ae.onset.isoformat(),
                },
                subject_id=subject_id,
                reason=f"grade {ae.worst_grade} related adverse event in the DLT window",
            )
        recorded = subject.window
        if not window.is_closed and (recorded is None or not recorded.is_closed):
            return
        if (
            recorded is not None
            and recorded.is_closed
            and (_same_window(recorded, window) or (window.pending and not window.is_closed))
        ):
            # A closed window stays as decided until a late candidate is adjudicated.
            return
        first_close = recorded is None or not recorded.is_closed
        self._decide(
            Trial.DltWindowClosed if first_close else Trial.DltWindowRevised,
            recorded_at,
            on,
            _window_to_data(window),
            subject_id=subject_id,
            reason=_window_reason(window) if first_close else "late or corrected data",
        )

    def _level_count(self, level: _Level) -> LevelCount:
        windows = [self._subjects[s].window for s in level.subjects]
        closed = [w for w in windows if w is not None and w.is_closed and w.evaluable]
        return LevelCount(evaluable=len(closed), dlts=sum(1 for w in closed if w.has_dlt))

    def _has_pending_candidates(self, level: _Level) -> bool:
        for subject_id in level.subjects:
            subject = self._subjects[subject_id]
            if subject.window is not None and subject.window.is_closed and subject.window.has_dlt:
                continue
            if not subject.flagged:
                continue
            aes = self._adverse_events(subject_id)
            if any(aes[ae].adjudicated_dlt is None for ae in subject.flagged if ae in aes):
                return True
        return False

    def _decide_escalation(self, recorded_at: datetime, on: date) -> None:
        while self.stage is Stage.ESCALATION:
            level = self._levels[self.current_level]
            if level.state is not CohortState.OPEN or self._has_pending_candidates(level):
                return
            count = self._level_count(level)
            if not cohort_is_decidable(count, level.slots):
                return
            counts = [self._level_count(lv) for lv in self._levels]
            self._apply_decision(
                decide(self.protocol.escalation.variant, counts, self.current_level),
                level,
                count,
                recorded_at,
                on,
            )

    def _apply_decision(
        self, decision: Decision, level: _Level, count: LevelCount, recorded_at: datetime, on: date
    ) -> None:
        index = self.current_level
        seen = f"{count.dlts}/{count.evaluable} DLTs at {level.name}"
        variant = self.protocol.escalation.variant.value
        counts_data = {
            "cohort": level.name,
            "level": index,
            "enrolled": len(level.subjects),
            "evaluable": count.evaluable,
            "dlts": count.dlts,
        }
        if isinstance(decision, Expand):
            slots = 2 * self.protocol.escalation.cohort_size
            self._decide(
                Trial.CohortExpanded,
                recorded_at,
                on,
                {**counts_data, "slots": slots, "decision": "expand"},
                reason=f"{seen}: treat 3 more at {level.name} ({variant})",
            )
            return
        label = _decision_label(decision, self.protocol)
        self._decide(
            Trial.CohortClosed,
            recorded_at,
            on,
            {**counts_data, "decision": label},
            reason=f"{seen}: {label} ({variant})",
        )
        if isinstance(decision, Escalate):
            target = self._levels[decision.to_level]
            self._move_dose(Trial.DoseEscalated, index, decision.to_level, recorded_at, on, seen)
            self._decide(
                Trial.CohortOpened,
                recorded_at,
                on,
                {
                    "cohort": target.name,
                    "level": decision.to_level,
                    "dose_mg": target.dose_mg,
                    "slots": self.protocol.escalation.cohort_size,
                },
                reason=f"escalated from {level.name}",
            )
        elif isinstance(decision, DeEscalate):
            target = self._levels[decision.to_level]
            self._move_dose(Trial.DoseDeescalated, index, decision.to_level, recorded_at, on, seen)
            self._decide(
                Trial.CohortExpanded,
                recorded_at,
                on,
                {
                    "cohort": target.name,
                    "level": decision.to_level,
                    "enrolled": len(target.subjects),
                    **_count_data(self._level_count(target)),
                    "slots": 2 * self.protocol.escalation.cohort_size,
                    "decision": "expand",
                },
                reason=f"{level.name} too toxic; treat 3 more at {target.name}",
            )
        elif isinstance(decision, DeclareMtd):
            mtd = self._levels[decision.level]
            self._decide(
                Trial.MtdDeclared,
                recorded_at,
                on,
                {
                    "cohort": mtd.name,
                    "level": decision.level,
                    "dose_mg": mtd.dose_mg,
                    **_count_data(self._level_count(mtd)),
                },
                reason=f"{seen} ({variant})",
            )
            if len(self._subjects) < self.protocol.max_subjects:
                self._decide(
                    Trial.ExpansionOpened,
                    recorded_at,
                    on,
                    {
                        "cohort": EXPANSION,
                        "at_cohort": mtd.name,
                        "dose_mg": mtd.dose_mg,
                        "places": self.protocol.max_subjects - len(self._subjects),
                    },
                    reason=f"stage 2 expands at the MTD ({mtd.name})",
                )
        elif isinstance(decision, StopForToxicity):
            self._decide(
                Trial.TrialStopped,
                recorded_at,
                on,
                {"cohort": level.name, "level": index, "reason": "no tolerable dose"},
                reason=f"{seen} at the lowest dose level",
            )

    def _move_dose(
        self,
        event_class: type[Trial.Event],
        from_level: int,
        to_level: int,
        recorded_at: datetime,
        on: date,
        reason: str,
    ) -> None:
        origin, target = self._levels[from_level], self._levels[to_level]
        data = {
            "from_cohort": origin.name,
            "from_level": from_level,
            "to_cohort": target.name,
            "to_level": to_level,
            "dose_mg": target.dose_mg,
        }
        self._decide(event_class, recorded_at, on, data, reason=reason)

    def _reevaluate_closed_cohorts(self, recorded_at: datetime, on: date) -> None:
        for index, level in enumerate(self._levels):
            if level.state is not CohortState.CLOSED or level.counts_at_decision is None:
                continue
            now = self._level_count(level)
            if now == level.counts_at_decision:
                continue
            self._decide(
                Trial.CohortReevaluated,
                recorded_at,
                on,
                {
                    "cohort": level.name,
                    "level": index,
                    "before": _count_data(level.counts_at_decision),
                    "after": _count_data(now),
                },
                reason="late or corrected data changed a closed cohort's count; "
                "earlier decisions stand and are flagged for review",
            )

    def _close_expansion_when_full(self, recorded_at: datetime, on: date) -> None:
        if self.stage is Stage.EXPANSION and len(self._subjects) >= self.protocol.max_subjects:
            self._decide(
                Trial.CohortClosed,
                recorded_at,
                on,
                {
                    "cohort": EXPANSION,
                    "enrolled": len(self._expansion_subjects),
                    "decision": "enrollment complete",
                },
                reason=f"{self.protocol.max_subjects} subjects enrolled",
            )

    def _decide(
        self,
        event_class: type[Trial.Event],
        recorded_at: datetime,
        on: date | None,
        data: Mapping[str, Any],
        *,
        subject_id: str | None = None,
        reason: str,
    ) -> None:
        self.trigger_event(
            event_class,
            timestamp=recorded_at,
            subject_id=subject_id,
            occurred_on=on,
            data=dict(data),
            event_id=None,
            source="trial-ledger",
            entered_by="trial-ledger",
            reason=reason,
        )

    # --- read helpers ---------------------------------------------------------------------------

    def _dose_of_cohort(self, cohort: str) -> float:
        if cohort == EXPANSION:
            assert self.mtd_level is not None
            return self._levels[self.mtd_level].dose_mg
        index = self.protocol.level_index(cohort)
        assert index is not None
        return self._levels[index].dose_mg

    def _cohort_subjects(self, cohort: str) -> list[str]:
        if cohort == EXPANSION:
            return self._expansion_subjects
        index = self.protocol.level_index(cohort)
        assert index is not None
        return self._levels[index].subjects

    def level_counts(self) -> dict[str, LevelCount]:
        """DLT-evaluable subjects and DLTs per dose level, as the aggregate counts them."""
        return {level.name: self._level_count(level) for level in self._levels}

    def enrolled_in(self, cohort: str) -> int:
        return len(self._cohort_subjects(cohort))

    def cohort_slots(self, cohort: str) -> int:
        index = self.protocol.level_index(cohort)
        return 0 if index is None else self._levels[index].slots

    def pending_candidates(self, cohort: str) -> bool:
        index = self.protocol.level_index(cohort)
        return index is not None and self._has_pending_candidates(self._levels[index])


_EVENT_CLASSES: dict[str, type[Trial.Event]] = {
    cls.ledger_type: cls
    for cls in (
        Trial.SubjectEnrolled,
        Trial.HaicAdministered,
        Trial.FruquintinibDosed,
        Trial.DoseModified,
        Trial.AdverseEventReported,
        Trial.AdverseEventUpdated,
        Trial.DltAdjudicated,
        Trial.TumorAssessed,
        Trial.AnticancerTherapyStarted,
        Trial.TreatmentDiscontinued,
        Trial.SubjectKnownAlive,
        Trial.SubjectDied,
        Trial.SubjectWithdrawn,
        Trial.RecordCorrected,
        Trial.RecordVoided,
    )
}


def _count_data(count: LevelCount) -> dict[str, int]:
    return {"evaluable": count.evaluable, "dlts": count.dlts}


def _decision_label(decision: Decision, protocol: ProtocolDefinition) -> str:
    names = [level.name for level in protocol.dose_levels]
    if isinstance(decision, Escalate):
        return f"escalate to {names[decision.to_level]}"
    if isinstance(decision, DeEscalate):
        return f"de-escalate to {names[decision.to_level]}"
    if isinstance(decision, DeclareMtd):
        return f"MTD is {names[decision.level]}" if decision.level >= 0 else "no MTD"
    if isinstance(decision, StopForToxicity):
        return "stop: no tolerable dose"
    return "expand"


_WINDOW_SENSITIVE_TYPES = (ADVERSE_EVENT_UPDATED, DLT_ADJUDICATED, RECORD_CORRECTED, RECORD_VOIDED)


def _window_may_change(subject: _Subject, submission: Submission) -> bool:
    """After the window closed, only facts dated inside it or amendments can change it."""
    window = subject.window
    if window is None or not window.is_closed or window.window_end is None:
        return True
    return submission.type in _WINDOW_SENSITIVE_TYPES or submission.occurred_on <= window.window_end


def _same_window(a: DltWindow, b: DltWindow) -> bool:
    return (a.is_closed, a.evaluable, a.has_dlt, a.doses_in_window) == (
        b.is_closed,
        b.evaluable,
        b.has_dlt,
        b.doses_in_window,
    )


def _window_reason(window: DltWindow) -> str:
    if window.has_dlt:
        return "dose-limiting toxicity adjudicated"
    if window.evaluable:
        return f"completed the DLT window with {window.doses_in_window} planned doses taken"
    if window.c1d1 is None:
        return "left the study before treatment: to be replaced"
    return f"not DLT-evaluable ({window.doses_in_window} planned doses taken): to be replaced"


def _window_to_data(window: DltWindow) -> dict[str, Any]:
    return {
        "c1d1": window.c1d1.isoformat() if window.c1d1 else None,
        "window_end": window.window_end.isoformat() if window.window_end else None,
        "closed": window.is_closed,
        "closed_on": window.closed_on.isoformat() if window.closed_on else None,
        "evaluable": window.evaluable,
        "dlt": window.has_dlt,
        "dlt_ae_ids": sorted(window.dlts),
        "doses_in_window": window.doses_in_window,
    }


def _window_from_data(data: Mapping[str, Any]) -> DltWindow:
    def day(key: str) -> date | None:
        value = data.get(key)
        return date.fromisoformat(value) if value else None

    return DltWindow(
        c1d1=day("c1d1"),
        window_end=day("window_end"),
        doses_in_window=int(data["doses_in_window"]),
        candidates=frozenset(),
        pending=frozenset(),
        dlts=frozenset(data["dlt_ae_ids"]),
        closed_on=day("closed_on"),
        evaluable=data["evaluable"],
    )
