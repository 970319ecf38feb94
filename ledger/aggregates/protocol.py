"""The protocol definition the Trial aggregate enforces.

The protocol is data, recorded in `trial.opened`, so an auditor can see which rules applied when.
This module validates that data with the standard library only, because the aggregate layer must
not depend on pydantic; the wire layer checks submissions, this checks the rules themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ledger.aggregates.escalation import Variant

EXPANSION = "EXPANSION"
"""The stage-2 cohort's name: it treats at the MTD, so no dose level may take the name."""


class ProtocolInvalidError(ValueError):
    """A protocol definition that cannot be enforced (message names the field)."""


@dataclass(frozen=True, slots=True)
class DoseLevel:
    name: str
    dose_mg: float


@dataclass(frozen=True, slots=True)
class HaicRegimen:
    day: int
    oxaliplatin_mg_m2: float
    fluorouracil_mg_m2: float


@dataclass(frozen=True, slots=True)
class OralSchedule:
    first_day: int
    last_day: int

    @property
    def planned_doses(self) -> int:
        return self.last_day - self.first_day + 1


@dataclass(frozen=True, slots=True)
class EscalationRules:
    variant: Variant
    cohort_size: int
    dlt_window_days: int
    dlt_min_grade: int
    evaluable_min_doses: int


@dataclass(frozen=True, slots=True)
class AssessmentSchedule:
    baseline_window_days: int
    interval_days: int
    window_days: int
    confirmation_days: int
    min_sd_days: int
    missed_visits_days: int


@dataclass(frozen=True, slots=True)
class ProtocolDefinition:
    protocol_id: str
    protocol_version: str
    title: str
    trial_id: str
    cycle_days: int
    haic: HaicRegimen
    fruquintinib: OralSchedule
    dose_levels: tuple[DoseLevel, ...]
    escalation: EscalationRules
    max_subjects: int
    assessments: AssessmentSchedule
    follow_up_days: int

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ProtocolDefinition:
        """Build and validate; every problem is reported with the field's path."""
        reader = _Reader(raw, "")
        protocol = cls(
            protocol_id=reader.text("protocol_id"),
            protocol_version=reader.text("protocol_version"),
            title=reader.text("title"),
            trial_id=reader.text("trial_id"),
            cycle_days=reader.positive_int("cycle_days"),
            haic=_read_haic(reader.section("haic")),
            fruquintinib=_read_oral(reader.section("fruquintinib")),
            dose_levels=_read_levels(reader.list_of_sections("dose_levels")),
            escalation=_read_escalation(reader.section("escalation")),
            max_subjects=reader.positive_int("max_subjects"),
            assessments=_read_assessments(reader.section("assessments")),
            follow_up_days=reader.positive_int("follow_up_days"),
        )
        reader.reject_unknown()
        protocol._check_consistency()
        return protocol

    def to_mapping(self) -> dict[str, Any]:
        """The JSON-ready form recorded in `trial.opened` (round-trips through from_mapping)."""
        mapping = asdict(self)
        mapping["escalation"]["variant"] = self.escalation.variant.value
        mapping["dose_levels"] = [asdict(level) for level in self.dose_levels]
        return mapping

    def with_variant(self, variant: Variant) -> ProtocolDefinition:
        raw = self.to_mapping()
        raw["escalation"]["variant"] = variant.value
        return ProtocolDefinition.from_mapping(raw)

    def with_max_subjects(self, subjects: int) -> ProtocolDefinition:
        """The same protocol with the expansion enlarged (or cut) to `subjects` in all."""
        raw = self.to_mapping()
        raw["max_subjects"] = subjects
        return ProtocolDefinition.from_mapping(raw)

    def level_index(self, name: str) -> int | None:
        for index, level in enumerate(self.dose_levels):
            if level.name == name:
                return index
        return None

    def cohort_level(self, cohort: str, *, expansion_at: int | None) -> DoseLevel | None:
        """The dose level a cohort treats at: its own, or for EXPANSION the level it expands.

        `expansion_at` is the MTD's level index (None before it is declared). The one place that
        works out a cohort's dose; None for a name the protocol does not know.
        """
        index = expansion_at if cohort == EXPANSION else self.level_index(cohort)
        return None if index is None else self.dose_levels[index]

    def _check_consistency(self) -> None:
        names = [level.name for level in self.dose_levels]
        if len(set(names)) != len(names):
            raise ProtocolInvalidError("dose_levels: level names must be unique")
        doses = [level.dose_mg for level in self.dose_levels]
        if doses != sorted(doses) or len(set(doses)) != len(doses):
            raise ProtocolInvalidError("dose_levels: doses must rise strictly from first to last")
        if EXPANSION in names:
            raise ProtocolInvalidError(f"dose_levels: '{EXPANSION}' is reserved for stage 2")
        if not 1 <= self.fruquintinib.first_day <= self.fruquintinib.last_day <= self.cycle_days:
            raise ProtocolInvalidError("fruquintinib: dosing days must lie within the cycle")
        if self.escalation.evaluable_min_doses > self.fruquintinib.planned_doses:
            raise ProtocolInvalidError(
                "escalation.evaluable_min_doses: more than the planned cycle-1 doses"
            )
        if self.escalation.cohort_size != 3:
            raise ProtocolInvalidError("escalation.cohort_size: a 3+3 design enrolls 3 at a time")
        if self.max_subjects < self.escalation.cohort_size:
            raise ProtocolInvalidError("max_subjects: fewer than one cohort")


def _read_haic(reader: _Reader) -> HaicRegimen:
    regimen = HaicRegimen(
        day=reader.positive_int("day"),
        oxaliplatin_mg_m2=reader.positive_number("oxaliplatin_mg_m2"),
        fluorouracil_mg_m2=reader.positive_number("fluorouracil_mg_m2"),
    )
    reader.reject_unknown()
    return regimen


def _read_oral(reader: _Reader) -> OralSchedule:
    schedule = OralSchedule(
        first_day=reader.positive_int("first_day"), last_day=reader.positive_int("last_day")
    )
    reader.reject_unknown()
    return schedule


def _read_levels(readers: list[_Reader]) -> tuple[DoseLevel, ...]:
    if not readers:
        raise ProtocolInvalidError("dose_levels: at least one level is needed")
    levels = []
    for reader in readers:
        levels.append(
            DoseLevel(name=reader.text("name"), dose_mg=reader.positive_number("dose_mg"))
        )
        reader.reject_unknown()
    return tuple(levels)


def _read_escalation(reader: _Reader) -> EscalationRules:
    variant_text = reader.text("variant")
    try:
        variant = Variant(variant_text)
    except ValueError:
        choices = ", ".join(v.value for v in Variant)
        raise ProtocolInvalidError(
            f"escalation.variant: {variant_text!r} is not one of {choices}"
        ) from None
    rules = EscalationRules(
        variant=variant,
        cohort_size=reader.positive_int("cohort_size"),
        dlt_window_days=reader.positive_int("dlt_window_days"),
        dlt_min_grade=reader.positive_int("dlt_min_grade"),
        evaluable_min_doses=reader.positive_int("evaluable_min_doses"),
    )
    reader.reject_unknown()
    if not 1 <= rules.dlt_min_grade <= 5:
        raise ProtocolInvalidError("escalation.dlt_min_grade: CTCAE grades run from 1 to 5")
    return rules


def _read_assessments(reader: _Reader) -> AssessmentSchedule:
    schedule = AssessmentSchedule(
        baseline_window_days=reader.positive_int("baseline_window_days"),
        interval_days=reader.positive_int("interval_days"),
        window_days=reader.positive_int("window_days"),
        confirmation_days=reader.positive_int("confirmation_days"),
        min_sd_days=reader.positive_int("min_sd_days"),
        missed_visits_days=reader.positive_int("missed_visits_days"),
    )
    reader.reject_unknown()
    return schedule


class _Reader:
    """Reads one JSON object, remembering which keys were used so unknown ones are errors."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ProtocolInvalidError(f"{path or 'protocol'}: expected an object")
        self._raw: Mapping[str, Any] = raw
        self._path = path
        self._used: set[str] = set()

    def _get(self, key: str) -> Any:
        self._used.add(key)
        if key not in self._raw:
            raise ProtocolInvalidError(f"{self._path}{key}: missing")
        return self._raw[key]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value.strip():
            raise ProtocolInvalidError(f"{self._path}{key}: expected a non-empty string")
        return value

    def positive_int(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProtocolInvalidError(f"{self._path}{key}: expected a positive integer")
        return value

    def positive_number(self, key: str) -> float:
        value = self._get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ProtocolInvalidError(f"{self._path}{key}: expected a positive number")
        return float(value)

    def section(self, key: str) -> _Reader:
        return _Reader(self._get(key), f"{self._path}{key}.")

    def list_of_sections(self, key: str) -> list[_Reader]:
        value = self._get(key)
        if not isinstance(value, list):
            raise ProtocolInvalidError(f"{self._path}{key}: expected a list")
        return [_Reader(item, f"{self._path}{key}[{i}].") for i, item in enumerate(value)]

    def reject_unknown(self) -> None:
        unknown = sorted(set(self._raw) - self._used)
        if unknown:
            raise ProtocolInvalidError(f"{self._path}{unknown[0]}: unknown field")
